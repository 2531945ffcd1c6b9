"""`bertserve online`: type a sentence, see each label's probability and the round-trip time.

    bertserve online --url http://127.0.0.1:8501 --model chnsenticorp
    echo 这家酒店很干净 | bertserve online --model chnsenticorp      # non-interactive
    bertserve online --model chnsenticorp --tokenizer models/chnsenticorp/1569141360  # ids, as in 2019

Prints one line per sentence in the original demo's (`predict_online.py`) shape:

    negative pro:0.9634 positive pro:0.0366 time consuming:12ms
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import TextIO

from bertserve.client import DEFAULT_URL

HELP = "interactive client: type a sentence, get label probabilities from a server"
DESCRIPTION = """Read sentences (one per line) and print each label's probability from a running server,
plus the round-trip time, in the original demo's format:

    negative pro:0.9634 positive pro:0.0366 time consuming:12ms

Label names come from the model's metadata. Stop with `exit`, Ctrl-D or Ctrl-C. When stdin is not a
terminal (piped input) no prompt is shown, so the output is exactly one line per input line (blank
lines are skipped). Exits 2 with a one-line message when the server cannot be reached.

Text goes to the server, which tokenizes. With --tokenizer the client tokenizes instead, as the 2019
demo's predict_online.py did, and sends its request: {"inputs": {"input_ids": [[101, ..., 102, 0, ...]]}},
zero-padded to the tokenizer's max_seq_length (128); that request also works on TensorFlow Serving.

examples:
  bertserve serve --model_name chnsenticorp --model_base_path models/chnsenticorp &
  bertserve online --url http://127.0.0.1:8501 --model chnsenticorp
  printf '很好\\n太差了\\n' | bertserve online --model chnsenticorp
  bertserve online --model chnsenticorp --tokenizer models/chnsenticorp/1569141360
  bertserve online --protocol grpc --url 127.0.0.1:8500 --model chnsenticorp     # TF Serving's gRPC API
  bertserve online --protocol v2 --model chnsenticorp                           # KServe V2 REST (/v2/...)"""

PROMPT = "sentence> "
EXIT_WORDS = frozenset({"exit", "quit"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--protocol", choices=("rest", "grpc", "v2"), default="rest",
                        help="rest: TF Serving's REST API; grpc: its gRPC API (Predict, GetModelMetadata); "
                             "v2: the Open Inference Protocol (KServe V2) over REST (default: rest)")
    parser.add_argument("--url", help=f"server address (default: {DEFAULT_URL}; with --protocol grpc: 127.0.0.1:8500)")
    parser.add_argument("--model", help="model name (default: the server's only model)")
    parser.add_argument("--timeout", type=float, default=35.0, help="seconds to wait for each answer (default: 35)")
    parser.add_argument("--tokenizer", metavar="FOLDER",
                        help="tokenize on the client and send zero-padded token ids, as the 2019 demo did "
                             "(an exported version folder or its tokenizer/ folder)")


def format_line(labels: list[str], probabilities: list[float], milliseconds: float) -> str:
    """`negative pro:0.9634 positive pro:0.0366 time consuming:12ms`."""
    parts = [f"{label} pro:{probability:.4f}" for label, probability in zip(labels, probabilities, strict=True)]
    return " ".join(parts) + f" time consuming:{round(milliseconds)}ms"


def run(args: argparse.Namespace) -> int:
    from bertserve.client import quiet_http_logs
    from bertserve.errors import ClientError
    from bertserve.serving.grpc.client import connect

    quiet_http_logs()
    encode = _client_tokenizer(args.tokenizer) if args.tokenizer else None

    with connect(args.protocol, args.url, args.model or "", args.timeout) as client:
        if args.model is None:
            client.use_the_only_model()
        # Fetching labels first also proves the server is up and the model exists before we prompt.
        labels = client.labels()
        interactive = sys.stdin.isatty()
        if interactive:
            print(f"model {client.model} at {client.url}; labels: {', '.join(labels)}. Type `exit` or Ctrl-D to stop.")
        try:
            while True:
                sentence = _read_sentence(sys.stdin, interactive)
                if sentence is None:
                    break
                sentence = sentence.strip()
                if not sentence:
                    continue
                if sentence.lower() in EXIT_WORDS:
                    break
                started = time.perf_counter()
                try:
                    if encode is None:
                        [probabilities] = client.predict_texts([sentence])
                    else:
                        [probabilities] = client.predict_ids(encode(sentence))
                except ClientError as error:
                    if error.status is None:
                        raise  # the server went away: no point reading more input
                    # A refused sentence (too long, ...) should not end the session.
                    print(f"bertserve: error: {error}", file=sys.stderr, flush=True)
                    continue
                elapsed_ms = (time.perf_counter() - started) * 1000.0
                print(format_line(labels, probabilities, elapsed_ms), flush=True)
        except KeyboardInterrupt:
            if interactive:
                print()
    return 0


def _client_tokenizer(folder: str):
    """sentence -> `[[101, ..., 102, 0, ...]]`: the 2019 demo's ids, padded to max_seq_length."""
    from pathlib import Path

    from bertserve.errors import ConfigError, PretrainedError
    from bertserve.layout import TOKENIZER_DIR, TOKENIZER_SETTINGS_FILE
    from bertserve.tokenizer import load_saved_tokenizer

    path = Path(folder).expanduser()
    if not (path / TOKENIZER_SETTINGS_FILE).is_file() and (path / TOKENIZER_DIR).is_dir():
        path = path / TOKENIZER_DIR  # a version folder: use the tokenizer saved inside it
    try:
        tokenizer = load_saved_tokenizer(path)
    except PretrainedError:
        raise ConfigError(
            f"--tokenizer {folder}: expected an exported version folder (BASE/<version>) or its {TOKENIZER_DIR}/ "
            f"folder ({TOKENIZER_SETTINGS_FILE} + its vocabulary)"
        ) from None
    return lambda sentence: tokenizer.encode([sentence], pad_to=tokenizer.max_seq_length).input_ids.tolist()


def _read_sentence(stream: TextIO, interactive: bool) -> str | None:
    """The next line, or None at end of input."""
    if interactive:
        try:
            return input(PROMPT)  # input() gives line editing and history on a terminal
        except EOFError:
            print()
            return None
    line = stream.readline()
    return line if line else None
