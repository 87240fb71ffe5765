"""``make demo``: both jobs end to end on built-in sample data, on the local runner."""
import argparse
import glob
import importlib.util
import logging
import os
import sys

from beam_jobs import quiet


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__)
  parser.add_argument('--output', default='demo-output', help='Folder for sample data and outputs.')
  parser.add_argument('--jobs', default='sites,images',
                      help='Comma-separated demos to run: sites, images, cloud '
                           '(default: sites,images; cloud = per-site job from BigQuery '
                           'to gs:// on local servers).')
  args = parser.parse_args(argv)
  logging.basicConfig(level=logging.WARNING)
  quiet.quiet_tensorflow(os.environ, 'INFO')
  output = os.path.abspath(args.output)
  jobs = set(args.jobs.split(','))
  if 'sites' in jobs:
    with quiet.quiet_imports('INFO'):
      from samples import site_demo  # pylint: disable=import-outside-toplevel
    print('== Per-site energy predictions ==', flush=True)
    site_demo.run_demo(output)
  if 'cloud' in jobs:
    from samples import cloud_demo  # pylint: disable=import-outside-toplevel
    print('== Per-site predictions, BigQuery -> gs:// on local servers ==', flush=True)
    cloud_demo.run_demo(output)
  if 'images' in jobs and importlib.util.find_spec('samples.detection_demo'):
    from samples import detection_demo  # pylint: disable=import-outside-toplevel
    print('== Image detection ==', flush=True)
    detection_demo.run_demo(output)
  reports = sorted(glob.glob(os.path.join(output, '*', 'report.html')))
  if reports:
    print('== Run reports (open in a browser) ==')
    for path in reports:
      print(f'  {path}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
