from setuptools import find_packages, setup

setup(
    name="node-transformer",
    version="0.3.0",
    description="Neural-ODE Transformer blocks for fairseq, with an adjoint odeint that gives every argument its gradient",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    # Every subpackage (the plugin's models/, modules/, tasks/): a wheel or a plain `pip install .` must hold
    # what fairseq imports through --user-dir, not only the top-level __init__.py. node_experiments is the
    # tooling (run directories, the runner, logs, records, figures), which fairseq never imports.
    packages=find_packages(include=["odeint_ext", "odeint_ext.*", "node_transformer", "node_transformer.*",
                                    "node_experiments", "node_experiments.*"]),
    python_requires=">=3.8",
    install_requires=[
        "torch>=2.1",
        "torchdiffeq>=0.2.5,<0.3",  # odeint_ext/_torchdiffeq.py reads its private solver table
        # Official fairseq 0.12.2 does not import on Python 3.11+ (dataclass mutable defaults);
        # fairseq-fixed is the same 0.12 code with those fixes.
        "fairseq-fixed==0.12.3.1; python_version >= '3.11'",
        "fairseq==0.12.2; python_version < '3.11'",
        "sacrebleu>=2",
        "tensorboardX",
        "tensorboard",  # reads the event files back (tests, plots)
        "sacremoses",  # Moses normalisation, tokenisation and detokenisation for Multi30k
        "subword-nmt",  # joint BPE for Multi30k
        "matplotlib",
    ],
    extras_require={
        # the ODE BERT's export to HuggingFace transformers (node_experiments/hf_export.py)
        "hf": ["transformers>=5,<6", "safetensors"],
        "test": ["pytest", "pytest-xdist", "nbclient", "nbformat", "ipykernel", "transformers>=5,<6", "safetensors"],
    },
    classifiers=["License :: OSI Approved :: Apache Software License", "Programming Language :: Python :: 3"],
)
