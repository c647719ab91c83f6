"""Face attributes on a photo, a video, the webcam or a folder: `python demo.py --help`."""

import sys

from mtlface.predict.cli import main

if __name__ == "__main__":
    sys.exit(main())
