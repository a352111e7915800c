import logging


def configure_logging(level: str) -> None:
    """Plain stdout logging for the app's loggers; uvicorn configures its own."""
    app_logger = logging.getLogger("app")
    app_logger.setLevel(level)
    if not app_logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
        app_logger.addHandler(handler)
        app_logger.propagate = False
