"""Client libraries nobody here wrote, against a running `bertserve serve`: prints one JSON object.

    .venv-clients/bin/python tests/serving/v2/real_clients.py CLIENT REST_URL GRPC_TARGET MODEL TEXTS_JSON IDS_JSON

Runs in the side venv `.venv-clients/` (tritonclient[http,grpc] and the kserve SDK pin protobuf 6,
bertserve's own venv has protobuf 7), so it imports nothing from bertserve. For every client it
records the probabilities of the texts and of the token-id rows, plus health and metadata answers,
and tests/serving/v2/test_v2_clients.py compares them with the server's own REST V1 answers.
"""

from __future__ import annotations

import asyncio
import json
import sys

import numpy as np


def tritonclient_http(url: str, model: str, texts: list[str], ids: list[list[int]], binary: bool) -> dict:
    import tritonclient.http as httpclient

    client = httpclient.InferenceServerClient(url.removeprefix("http://"))
    text = httpclient.InferInput("text", [len(texts)], "BYTES")
    text.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object), binary_data=binary)
    outputs = None if binary else [httpclient.InferRequestedOutput(name, binary_data=False) for name in ("probabilities", "label")]
    result = client.infer(model, [text], outputs=outputs)
    id_input = httpclient.InferInput("input_ids", [len(ids), len(ids[0])], "INT64")
    id_input.set_data_from_numpy(np.array(ids, dtype=np.int64), binary_data=binary)
    by_ids = client.infer(model, [id_input], outputs=outputs)
    metadata = client.get_model_metadata(model)
    return {
        "live": client.is_server_live(), "ready": client.is_server_ready(), "model_ready": client.is_model_ready(model),
        "server_extensions": client.get_server_metadata()["extensions"],
        "inputs": [(t["name"], t["datatype"], t["shape"]) for t in metadata["inputs"]],
        "texts": result.as_numpy("probabilities").tolist(),
        "labels": [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("label").tolist()],
        "ids": by_ids.as_numpy("probabilities").tolist(),
    }


def tritonclient_grpc(target: str, model: str, texts: list[str], ids: list[list[int]]) -> dict:
    import tritonclient.grpc as grpcclient

    client = grpcclient.InferenceServerClient(target)
    text = grpcclient.InferInput("text", [len(texts)], "BYTES")
    text.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=object))
    result = client.infer(model, [text])
    id_input = grpcclient.InferInput("input_ids", [len(ids), len(ids[0])], "INT64")
    id_input.set_data_from_numpy(np.array(ids, dtype=np.int64))
    by_ids = client.infer(model, [id_input], outputs=[grpcclient.InferRequestedOutput("probabilities")])
    metadata = client.get_model_metadata(model, as_json=True)
    try:
        client.infer("no-such-model", [text])
        unknown = "no error"
    except Exception as error:  # tritonclient's InferenceServerException
        unknown = error.status()
    return {
        "live": client.is_server_live(), "ready": client.is_server_ready(), "model_ready": client.is_model_ready(model),
        "inputs": [(t["name"], t["datatype"], [int(d) for d in t["shape"]]) for t in metadata["inputs"]],
        "texts": result.as_numpy("probabilities").tolist(),
        "labels": [label.decode() if isinstance(label, bytes) else label for label in result.as_numpy("label").tolist()],
        "ids": by_ids.as_numpy("probabilities").tolist(),
        "unknown_model": unknown,
    }


def _kserve_request(model: str, texts: list[str], ids: list[list[int]], binary: bool = False):
    from kserve import InferInput, InferRequest
    from kserve.protocol.infer_type import RequestedOutput

    text = InferInput("text", [len(texts)], "BYTES")
    text.set_data_from_numpy(np.array(texts, dtype=object), binary_data=binary)
    id_input = InferInput("input_ids", [len(ids), len(ids[0])], "INT64")
    id_input.set_data_from_numpy(np.array(ids, dtype=np.int64), binary_data=binary)
    outputs = [RequestedOutput(name, {"binary_data": True}) for name in ("probabilities", "label")] if binary else None
    return (InferRequest(model_name=model, infer_inputs=[text], request_outputs=outputs),
            InferRequest(model_name=model, infer_inputs=[id_input], request_outputs=outputs))


def _probabilities(response) -> list:
    output = next(o for o in response.outputs if o.name == "probabilities")
    return np.asarray(output.as_numpy(), dtype=np.float32).reshape(output.shape).tolist()


async def kserve_rest(url: str, model: str, texts: list[str], ids: list[list[int]], binary: bool = False) -> dict:
    from kserve import InferenceRESTClient, RESTConfig

    v2 = InferenceRESTClient(RESTConfig(protocol="v2"))
    v1 = InferenceRESTClient(RESTConfig(protocol="v1"))
    by_texts, by_ids = _kserve_request(model, texts, ids, binary)
    texts_answer = await v2.infer(url, by_texts, model_name=model)
    ids_answer = await v2.infer(url, by_ids, model_name=model)
    answers = {
        "live": await v2.is_server_live(url), "ready": await v2.is_server_ready(url),
        "model_ready": await v2.is_model_ready(url, model), "v1_live": await v1.is_server_live(url),
        "model_name": texts_answer.model_name,
        "texts": _probabilities(texts_answer), "ids": _probabilities(ids_answer),
    }
    await v2.close()
    await v1.close()
    return answers


async def kserve_grpc(target: str, model: str, texts: list[str], ids: list[list[int]]) -> dict:
    from kserve import InferenceGRPCClient

    client = InferenceGRPCClient(target)
    by_texts, by_ids = _kserve_request(model, texts, ids)
    answers = {
        "texts": _probabilities(await client.infer(by_texts)),
        "ids": _probabilities(await client.infer(by_ids)),
        "live": await client.is_server_live(), "ready": await client.is_server_ready(),
        "model_ready": await client.is_model_ready(model),
    }
    await client.close()
    return answers


CLIENTS = {
    "tritonclient.http": lambda url, target, model, texts, ids: tritonclient_http(url, model, texts, ids, binary=True),
    "tritonclient.http-json": lambda url, target, model, texts, ids: tritonclient_http(url, model, texts, ids, binary=False),
    "tritonclient.grpc": lambda url, target, model, texts, ids: tritonclient_grpc(target, model, texts, ids),
    "kserve-rest": lambda url, target, model, texts, ids: asyncio.run(kserve_rest(url, model, texts, ids)),
    "kserve-rest-binary": lambda url, target, model, texts, ids: asyncio.run(kserve_rest(url, model, texts, ids, binary=True)),
    "kserve-grpc": lambda url, target, model, texts, ids: asyncio.run(kserve_grpc(target, model, texts, ids)),
}


def main() -> None:
    # One client per process: tritonclient.grpc and kserve both register the `inference.*` protobuf
    # messages, and one process cannot hold both.
    client, url, target, model, texts_json, ids_json = sys.argv[1:7]
    print(json.dumps(CLIENTS[client](url, target, model, json.loads(texts_json), json.loads(ids_json))))


if __name__ == "__main__":
    main()
