"""The ways in: the HTTP API and the command line. Thin: parse, call one use case, render."""
