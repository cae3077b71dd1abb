"""Message contract between the ServerApp and the ClientApps.

Every record name and key that crosses the wire is defined here once, so the
server, the client and the tests cannot drift apart.  Keys use dashes, like
Flower's own run-config keys.
"""

from __future__ import annotations

# Record names inside a message's RecordDict.
ADAPTER = "adapter"  # ArrayRecord: LoRA weights, PEFT state-dict keys, float32
# ArrayRecord (train reply, comm.compression fp16 / int8): the change from the weights the
# node received, compressed (fedmoe_flwr/codec.py); replaces ADAPTER in the reply.
DELTA = "delta"
CONFIG = "config"  # ConfigRecord: instructions (server -> node)
INFO = "info"  # ConfigRecord: node registration (node -> server)
CENTROID = "centroid"  # ArrayRecord {"mean": (hidden,)}: mean prompt embedding (query reply)
NGRAMS = "ngrams"  # ArrayRecord {"counts": (buckets,)}: hashed char n-gram counts (query reply)
METRICS = "metrics"  # MetricRecord: training metrics (node -> server)
EVAL_LOSSES = "eval-losses"  # MetricRecord: adapter name -> held-out loss
EVAL_PREFIX = "eval."  # ArrayRecord names in an evaluate message: "eval.<adapter>"
# Evaluate CONFIG keys "lora-r.<adapter>" / "lora-alpha.<adapter>": the rank and alpha of an
# adapter that differs from the run's (merged gateways); absent = the run's values.
EVAL_RANK_PREFIX = "lora-r."
EVAL_ALPHA_PREFIX = "lora-alpha."

# query reply (INFO) keys
SPECIALTY = "specialty"
NUM_TRAIN = "num-train-examples"
NUM_EVAL = "num-eval-examples"
BASE_MODEL = "base-model"
MODEL_FINGERPRINT = "model-fingerprint"
LORA_R = "lora-r"
LORA_ALPHA = "lora-alpha"
LORA_DROPOUT = "lora-dropout"
LORA_TARGETS = "lora-target-modules"
DEVICE = "device"
SPEED_FACTOR = "speed-factor"
DATA_PATH = "data-path"
SKIPPED_LINES = "skipped-lines"
CENTROID_COUNT = "centroid-examples"  # prompts averaged into CENTROID (0 = none sent)

# train instruction (CONFIG) keys
VERSION = "version"
TIME_BUDGET = "time-budget-s"
MAX_STEPS = "max-steps"
LEARNING_RATE = "learning-rate"
SEED = "seed"

# train reply (METRICS) keys
NUM_EXAMPLES = "num-examples"
TRAIN_LOSS = "train-loss"
STEPS = "steps"
TOKENS = "tokens"
TRAIN_SECONDS = "train-seconds"
LOAD_SECONDS = "load-seconds"
# Optional: seconds from the ClientApp process's creation to the handler (interpreter, imports,
# Flower runtime). Non-zero only for a process's first message: in deployment every message
# starts a new process; a simulation actor reuses one.
PROCESS_SECONDS = "process-seconds"
# Optional: the pid of the process that handled the message (a warm worker keeps one pid).
PROCESS_ID = "process-id"
BASE_VERSION = "base-version"
# Optional (privacy on): L2 norm of the node's delta before clipping, for the update event.
DELTA_NORM = "delta-norm"

TRAIN_METRIC_KEYS = (NUM_EXAMPLES, TRAIN_LOSS, STEPS, TOKENS, TRAIN_SECONDS, LOAD_SECONDS,
                     BASE_VERSION)

GATEWAY = "gateway"  # adapter name of the gateway in evaluate messages and artifacts
# strategy.name = "flower-fedavg" (fedmoe_flwr/server/peer.py): Flower's FedAvg trains one
# adapter, named GLOBAL on the nodes and in the run directory, in Flower's message layout:
# ArrayRecord FLOWER_ARRAYS (one Array per key) + ConfigRecord CONFIG, replied to with
# FLOWER_ARRAYS + MetricRecord METRICS (NUM_EXAMPLES, TRAIN_LOSS).
GLOBAL = "global"
FLOWER_ARRAYS = "arrays"
ROUTER_FILE = "router.json"  # run-directory file with the per-specialty centroids
