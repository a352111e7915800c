"""The application package: its name and version, as released and reported."""

PROJECT_NAME = "{{ cookiecutter.project_name | replace('\\', '\\\\') | replace('"', '\\u0022') }}"
__version__ = "{{ cookiecutter.version }}"
