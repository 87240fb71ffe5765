"""The image detection job's flags and ``--help`` text, without Beam or torch.

``beam_jobs.detect_images.DetectImagesOptions`` registers these flags with
Beam; the console script prints ``--help`` from here before importing
anything heavy. The defaults below are the library's own
(``models.detector.yolo_handler``, ``transforms.detection.image_decode``),
repeated so that importing this module stays light; a test keeps them equal.
"""
from beam_jobs.flags_io import flag_value

DEFAULT_BATCH_SIZE = 8
DEFAULT_SCORE_THRESHOLD = 0.25
DEFAULT_IOU_THRESHOLD = 0.45
DEFAULT_MAX_DETECTIONS = 100
DEVICES = ('cpu', 'cuda')
DEFAULT_MAX_IMAGE_PIXELS = 64_000_000

PROG = 'detect-images'
DESCRIPTION = ('Finds objects in images with a YOLO detector (Darknet or TorchScript). '
               'Writes detections/, annotated/ copies, errors/ (one dead letter per failed '
               'image) and summary.json under --output.')
USAGE = (f'{PROG} --input=DIR --output=DIR\n       (--model=FILE | --model_config=CFG '
         '--model_weights=WEIGHTS --class_names=NAMES)\n       [flag=value ...]')
EXAMPLE = (f'  {PROG} --input=images/ --output=out/run-1 --model_config=yolov3.cfg \\\n'
           '      --model_weights=yolov3.weights --class_names=coco.names --classes=zebra\n'
           '  (on Dataflow, with gs:// paths: add --runner=DataflowRunner --project=P\n'
           '   --region=R --temp_location=gs://B/tmp)')
INPUT_HELP = ('Folder, prefix or glob of .jpg/.jpeg/.png images (local or gs://, recursive; '
              'the first folder below it names the site).')


def add_flags(parser) -> None:
  """Adds the job's own flags (``--input``/``--output``: ``beam_jobs.flags_io``)."""
  model = parser.add_argument_group(
      'model (required: --model, or --model_config, --model_weights and --class_names)')
  model.add_argument(
      '--model',
      type=str,
      default=None,
      metavar='FILE',
      help=('TorchScript YOLO export with the Ultralytics output layout [B, 4+nc, N]. '
            'Alternative to --model_config/--model_weights.'))
  model.add_argument('--model_config',
                     type=str,
                     default=None,
                     metavar='CFG',
                     help='Darknet .cfg (YOLOv3, yolov3-tiny and relatives).')
  model.add_argument('--model_weights',
                     type=str,
                     default=None,
                     metavar='WEIGHTS',
                     help='Darknet .weights matching --model_config exactly.')
  model.add_argument('--class_names',
                     type=str,
                     default=None,
                     metavar='NAMES',
                     help=('Class names, one per line (coco.names). Required with Darknet; with '
                           '--model it overrides the names stored in the file.'))
  parser.add_argument(
      '--classes',
      type=str,
      default=None,
      metavar='A,B,...',
      help=('Comma-separated labels to keep (e.g. "zebra,person"); annotated copies '
            'are then written only for images containing one. Default: all.'))
  parser.add_argument('--image_size',
                      type=int,
                      default=None,
                      metavar='PIXELS',
                      help=('Side of the square network input, a multiple of 32. Default: 416 for '
                            'Darknet, the export\'s size (else 640) for --model.'))
  parser.add_argument('--score_threshold',
                      type=float,
                      default=DEFAULT_SCORE_THRESHOLD,
                      metavar='SCORE',
                      help='Keep detections scoring above this (0-1).')
  parser.add_argument('--iou_threshold',
                      type=float,
                      default=DEFAULT_IOU_THRESHOLD,
                      metavar='IOU',
                      help='Class-aware NMS overlap threshold (0-1).')
  parser.add_argument('--max_detections',
                      type=int,
                      default=DEFAULT_MAX_DETECTIONS,
                      metavar='N',
                      help='Most detections kept per image.')
  parser.add_argument('--batch_size',
                      type=int,
                      default=DEFAULT_BATCH_SIZE,
                      metavar='N',
                      help='Images per forward pass.')
  parser.add_argument('--device',
                      type=str,
                      default='cpu',
                      choices=DEVICES,
                      help='Where the model runs; cuda fails at start-up without a GPU.')
  parser.add_argument(
      '--cpu_threads',
      type=int,
      default=None,
      metavar='N',
      help=('torch threads per worker process on CPU (default: torch\'s, all cores). '
            'On Dataflow, where each vCPU runs its own SDK process, 1 avoids '
            'oversubscribing the cores.'))
  parser.add_argument('--max_image_pixels',
                      type=int,
                      default=DEFAULT_MAX_IMAGE_PIXELS,
                      metavar='N',
                      help=('Images with more pixels (width x height, read from the '
                            'header) are dead-lettered as image_too_large.'))
  parser.add_argument('--delete_inputs',
                      type=flag_value,
                      nargs='?',
                      const=True,
                      default=False,
                      help='Delete each processed input once all outputs are committed '
                      '(--delete_inputs or --delete_inputs=true).')
  parser.add_argument('--move_inputs_to',
                      type=str,
                      default=None,
                      metavar='DIR',
                      help=('Move each processed input below this folder (keeping its path below '
                            '--input) once all outputs are committed.'))
