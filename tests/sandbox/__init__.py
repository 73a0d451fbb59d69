"""The sandbox tests: a package, so that its conftest does not clash with the integration tests' one."""
