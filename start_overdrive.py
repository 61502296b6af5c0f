"""Start the Overdrive service (same as `python -m overdrive.app`)."""

from overdrive.app import main

if __name__ == "__main__":
    main()
