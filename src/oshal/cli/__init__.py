"""The ``oshal`` command line: thin commands over the API and the platform launcher."""
