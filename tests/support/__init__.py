"""Helpers the tests share: servers and fakes that speak over real sockets."""
