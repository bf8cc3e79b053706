"""AWS Glue 5.0 (glueetl, Python 3.11) entry of the scheduled retraining job: `python -m model_export retrain`.

template.yaml's RetrainJob points Command.ScriptLocation here (`sam package` uploads this file); the project's
code reaches the job as --extra-py-files and its locked dependencies as --additional-python-modules, both built
by `make glue` and uploaded by `make glue-publish`. The trainer runs on the driver; when the window holds more
events than --spark-above (template parameter RetrainSparkAbove), reading the archive, the replay and the counts
run on the job's own Spark (model_export.data.spark_archive, model_export.training.spark_engine: the same
functions per partition), Glue 5.0 being Spark 3.5.
"""

import sys

from model_export.publishing.commands import glue_main

if __name__ == "__main__":
    sys.exit(glue_main(sys.argv[1:]))
