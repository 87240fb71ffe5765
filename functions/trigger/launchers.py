"""Launching a request: on Dataflow as a Flex template, or locally with Beam's local runner."""
import importlib
from typing import NamedTuple

from google.api_core import exceptions as api_exceptions

from launch_requests import LaunchRequest
from launch_requests import as_argv
from trigger_config import TriggerConfig


class Launched(NamedTuple):
  job_id: str
  already_running: bool = False


class LaunchRefused(RuntimeError):
  """Dataflow answered 400: the request itself is wrong; retrying cannot help."""


def launch_on_dataflow(request: LaunchRequest, config: TriggerConfig) -> Launched:
  """``flexTemplates:launch`` through google-cloud-dataflow-client.

  A 409 ALREADY_EXISTS (a job of that name is active) is returned as
  ``already_running``; a 400 (INVALID_ARGUMENT, FAILED_PRECONDITION) raises
  LaunchRefused; other errors propagate so the event is retried.
  """
  # pylint: disable=import-outside-toplevel
  from google.cloud import dataflow_v1beta3

  options = {}
  if config.dataflow_endpoint:
    options = {'client_options': {'api_endpoint': config.dataflow_endpoint}, 'transport': 'rest'}
  client = dataflow_v1beta3.FlexTemplatesServiceClient(**options)
  env = config.environments[request.job]
  environment = dataflow_v1beta3.FlexTemplateRuntimeEnvironment(
      max_workers=env.max_workers or 0,
      machine_type=env.machine_type or '',
      service_account_email=env.service_account_email or '',
      temp_location=env.temp_location or '',
      sdk_container_image=env.sdk_container_image or '',
      additional_experiments=list(env.additional_experiments))
  launch = dataflow_v1beta3.LaunchFlexTemplateRequest(
      project_id=config.project,
      location=config.region,
      launch_parameter=dataflow_v1beta3.LaunchFlexTemplateParameter(
          job_name=request.job_name,
          container_spec_gcs_path=config.templates[request.job],
          parameters=request.parameters,
          environment=environment))
  try:
    response = client.launch_flex_template(request=launch)
  except api_exceptions.Conflict:
    return Launched('', already_running=True)
  except api_exceptions.BadRequest as e:
    raise LaunchRefused(f'Dataflow refused the launch: {e.message}') from e
  return Launched(response.job.id)


def launch_locally(request: LaunchRequest, config: TriggerConfig) -> Launched:
  """Runs the job in this process on Beam's local runner (laptops, tests)."""
  del config
  job = importlib.import_module(f'beam_jobs.{request.job}')
  job.run(as_argv(request.parameters))
  return Launched(f'local-{request.job_name}')


def launch(request: LaunchRequest, config: TriggerConfig) -> Launched:
  if config.launch_mode == 'local':
    return launch_locally(request, config)
  return launch_on_dataflow(request, config)
