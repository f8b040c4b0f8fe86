"""build.py's package, next to the Dockerfiles it builds: one module per step.

- ``images.matrix``: images/matrix.toml, the shared ``Options`` and the plan (``Target``s);
  reads files only.
- ``images.context``: the build context: dumb-init, dependency wheels, our wheel.
- ``images.dockerbuild``: the daemon, the base (found, pulled, or missing) and the build.
- ``images.verify``: what an image must pass inside before it gets a tag.
- ``images.publish``: tag and push.
- ``images.pipeline``: the steps in order for a whole plan, and the summary.
- ``images.cli``: the ``fire`` command line that build.py starts.
- ``images.streams``: stdout and stderr through the launcher's redaction, while it runs.
- ``images.errors``: the errors and their exit statuses.

Only the launcher (``entrypoint/``) goes into the images; this package runs on the build
machine.
"""
