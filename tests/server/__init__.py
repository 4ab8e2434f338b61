"""Tests of `amq broker serve`: real clients over real sockets (a package, so that its
conftest does not shadow the `conftest` module the other tests import from)."""
