"""One module per external system. Only this package (and the edges) does I/O."""
