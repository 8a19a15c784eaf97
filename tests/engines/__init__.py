"""Engine programs the tests run as real subprocesses."""
