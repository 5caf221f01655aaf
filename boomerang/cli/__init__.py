"""The `boomerang` command: provisioning, database maintenance and running the platform."""
