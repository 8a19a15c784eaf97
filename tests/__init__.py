"""stepwatch test suite."""
