"""Start the Overdrive service (same as `python -m overdrive.app`)."""

if __name__ == "__main__":
    from overdrive.observability.process_memory import use_system_allocator

    use_system_allocator()  # before the service's imports, as `python -m overdrive.app` does

    from overdrive.app import main

    main()
