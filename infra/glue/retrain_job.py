"""AWS Glue 5.0 (glueetl, Python 3.11) entry of the scheduled retraining job: `python -m model_export retrain`.

template.yaml's RetrainJob points Command.ScriptLocation here (`sam package` uploads this file); the project's
code reaches the job as --extra-py-files and its locked dependencies as --additional-python-modules, both built
by `make glue` and uploaded by `make glue-publish`. The trainer runs on the driver; nothing here needs Spark.
"""

import sys

from model_export.publishing.commands import glue_main

if __name__ == "__main__":
    sys.exit(glue_main(sys.argv[1:]))
