"""Tests of the ml package, one folder per subpackage."""
