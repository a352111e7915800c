"""`make sentry-dev`: a loopback stand-in for Sentry that prints what the app sends it.

receiver.py takes the SDK's envelopes (the Sentry tests use it too, to assert on what really
left the process); view.py formats them for a developer. `python -m tools.sentry_dev PORT`
runs it in the foreground; Ctrl-C or SIGTERM stops it.
"""
