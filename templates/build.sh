#!/usr/bin/env bash
# Builds both job images with Cloud Build and writes their Flex template specs.
#
#   PROJECT=my-project REGION=europe-west4 BUCKET=my-bucket templates/build.sh
#
# Build args per job (templates/Dockerfile): site_predictions gets JOB only (the
# wheel without extras, no torch); detect_images gets JOB, TORCH_VERSION (the pin
# in requirements.txt) and TORCH_INDEX_URL (DETECT_TORCH_INDEX_URL, default
# PyPI's CUDA build for GPU workers; https://download.pytorch.org/whl/cpu for CPU ones).
#
# Writes gs://$BUCKET/templates/site_predictions.json and detect_images.json;
# the trigger function's SITE_PREDICTIONS_TEMPLATE / DETECT_IMAGES_TEMPLATE point at them.
set -euo pipefail
cd "$(dirname "$0")/.."
: "${PROJECT:?set PROJECT}" "${REGION:?set REGION}" "${BUCKET:?set BUCKET}"
REPO=${REPO:-batch-inference}          # Artifact Registry docker repository
TAG=${TAG:-$(git rev-parse --short HEAD)}
REGISTRY="$REGION-docker.pkg.dev/$PROJECT/$REPO"
TORCH_VERSION=$(sed -n 's/^torch==//p' requirements.txt)

build() {  # job [docker build args...]
  local job=$1 image="$REGISTRY/$1:$TAG" config arg args=""
  shift
  for arg in JOB="$job" "$@"; do args+=" --build-arg, $arg,"; done
  config=$(mktemp)
  cat >"$config" <<YAML
steps:
- name: gcr.io/cloud-builders/docker
  args: [build, -f, templates/Dockerfile,$args -t, $image, .]
images: [$image]
YAML
  gcloud builds submit . --project "$PROJECT" --region "$REGION" --config "$config"
  rm -f "$config"
  gcloud dataflow flex-template build "gs://$BUCKET/templates/$job.json" \
    --project "$PROJECT" \
    --image "$image" \
    --sdk-language PYTHON \
    --metadata-file "templates/$job/metadata.json" \
    --additional-experiments use_runner_v2 \
    --additional-user-labels job=$job
  echo "template gs://$BUCKET/templates/$job.json -> $image"
}

build site_predictions
build detect_images TORCH_VERSION="$TORCH_VERSION" \
  TORCH_INDEX_URL="${DETECT_TORCH_INDEX_URL:-https://pypi.org/simple}"
