"""Flex template entry point of the image detection job (FLEX_TEMPLATE_PYTHON_PY_FILE).

The template launcher runs this file as ``__main__``. It only calls the installed
package's CLI, so every pipeline function lives in ``beam_jobs`` / ``transforms``
and is pickled by reference to its module, never as ``__main__``.
"""
import sys

from beam_jobs.detect_images import main

if __name__ == '__main__':
  sys.exit(main())
