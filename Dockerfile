# The training image: TensorFlow 2.21 with GPU support, this package, and Beam's worker
# boot loader. Vertex AI has no prebuilt TF 2.21 training container, hence this one.
#
#   docker run IMAGE                    (s140-train's flags: the default command)
#   docker run IMAGE train --data_dir=gs://BUCKET/data --architecture=bilstm
#   docker run IMAGE tune  --data_dir=gs://BUCKET/data --tuner=hyperband
#   docker run IMAGE preprocess --train_csv=... --output_dir=...   (DirectRunner)
#   docker run IMAGE predict --model_dir=gs://BUCKET/runs/1/model "what a day"
#
# Built and pushed by cloudbuild.yaml; see docs/cloud.md.

# The Python minor version must be the base image's: Dataflow starts this image as a
# Beam SDK worker, and Beam's boot loader and SDK must match the interpreter.
ARG TF_VERSION=2.21.0
ARG BEAM_VERSION=2.77.0
ARG PYTHON_VERSION=3.11

FROM apache/beam_python${PYTHON_VERSION}_sdk:${BEAM_VERSION} AS beam

FROM tensorflow/tensorflow:${TF_VERSION}-gpu
ARG TF_VERSION
ARG BEAM_VERSION
ARG PYTHON_VERSION

# RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT: Beam's boot loader uses this image's Python and
# packages as they are, instead of creating a virtual environment at every worker start
# (which fails without python3-venv); Dataflow's custom-container guide sets it too.
ENV PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    TF_CPP_MIN_LOG_LEVEL=1 \
    RUN_PYTHON_SDK_IN_DEFAULT_ENVIRONMENT=1

# Fail the build early, and say why, when the base image's Python or TensorFlow is not
# what the rest of this file assumes.
RUN python3 -c "import sys; v = '%d.%d' % sys.version_info[:2]; assert v == '${PYTHON_VERSION}', 'base image has Python ' + v + ', expected ${PYTHON_VERSION}: pass --build-arg PYTHON_VERSION=' + v" \
 && python3 -c "import tensorflow as tf; assert tf.__version__ == '${TF_VERSION}', tf.__version__" \
 && (command -v python >/dev/null || ln -s "$(command -v python3)" /usr/local/bin/python)

# Beam's boot loader: Dataflow runs it as the container's entry point for SDK workers
# (cloud/entrypoint.py hands over to it when started with Beam's boot flags).
COPY --from=beam /opt/apache/beam /opt/apache/beam

WORKDIR /opt/s140
COPY setup.py constraints.txt ./
COPY common ./common
COPY preprocessing ./preprocessing
COPY trainer ./trainer
COPY tuning ./tuning
COPY cloud ./cloud

# TensorFlow (GPU build) comes with the base image; the `gpu` extra would pull a second
# copy of the CUDA wheels. Every other package is pinned by constraints.txt to the
# version the tests ran with; Beam is the boot loader's version (setup.py pins it too).
RUN python3 -m pip install --constraint constraints.txt ".[cloud,glove,plots]" "apache-beam[gcp]==${BEAM_VERSION}" \
 && python3 -c "import tensorflow as tf, apache_beam, keras_tuner, cloud.entrypoint; assert tf.__version__ == '${TF_VERSION}', 'pip replaced TensorFlow: ' + tf.__version__" \
 && s140-submit --help >/dev/null \
 && python3 -m cloud.entrypoint train --helpshort >/dev/null

# With no arguments the image prints s140-train's flags and exits 0.
ENTRYPOINT ["python3", "-m", "cloud.entrypoint"]
CMD ["train", "--helpshort"]
