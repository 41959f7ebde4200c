"""Handlers of the `nasrepro` verbs: each takes the parsed arguments and returns a JSON-able dict."""
