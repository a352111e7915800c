"""The application package; its version is the one released and reported."""

__version__ = "{{ cookiecutter.version }}"
