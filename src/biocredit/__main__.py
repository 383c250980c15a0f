"""``python -m biocredit``: the command line, as the ``biocredit`` command runs it."""

import sys


def main() -> int:
    """Import the command line (and torch) and run it; a Ctrl-C while importing ends in one
    line and exit code 130 like one while running."""
    try:
        from .cli import main as run
    except KeyboardInterrupt:
        print("biocredit: interrupted", file=sys.stderr)
        return 130
    return run()


if __name__ == "__main__":
    sys.exit(main())
