"""Tests of bastion-resource (a package, so that its conftest never shadows another one)."""
