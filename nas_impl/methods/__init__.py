"""Search methods: one module (or subpackage) per paper."""
