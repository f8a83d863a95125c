"""Allow ``python -m planctl``."""

from planctl.cli import main

if __name__ == "__main__":
    main()
