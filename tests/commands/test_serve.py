"""`bertserve serve` argument handling: TF Serving's flag names, one-line errors, exit code 2.

(The running server itself is tested in tests/serving/test_server_subprocess.py.)"""

from __future__ import annotations

import socket

import pytest

from bertserve.cli import build_parser, main
from bertserve.commands.serve import model_configs
from bertserve.serving.model_config import ModelConfig


def test_tf_serving_style_flags_parse(tmp_path):
    args = build_parser().parse_args(
        ["serve", "--model_name=m", f"--model_base_path={tmp_path}", "--rest_api_port=9001",
         "--version_policy=specific", "--versions=1,3", "--max_batch_size=8", "--batch_timeout_micros=500"]
    )
    assert (args.rest_api_port, args.max_batch_size, args.batch_timeout_micros) == (9001, 8, 500)
    assert model_configs(args) == [ModelConfig("m", tmp_path.resolve(), "specific", versions=(1, 3))]


def test_grpc_port_flag_defaults_to_tf_servings_8500_and_0_turns_it_off(tmp_path, capsys):
    base = ["serve", "--model_name=m", f"--model_base_path={tmp_path}"]
    assert build_parser().parse_args(base).port == 8500
    assert build_parser().parse_args([*base, "--port=0"]).port == 0
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    assert "--port 0 turns gRPC off" in " ".join(capsys.readouterr().out.split())


def test_grpc_port_in_use_is_a_one_line_error(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(["serve", "--model_name", "m", "--model_base_path", str(tmp_path), "--rest_api_port", "0",
                     "--port", str(port)])
    error = capsys.readouterr().err
    assert code == 2
    assert error == (f"bertserve: error: cannot listen for gRPC on 127.0.0.1:{port}; choose another --port "
                     "(0 turns gRPC off) or stop the other server\n")


@pytest.mark.parametrize(
    "arguments, message",
    [
        ([], "give --model_name and --model_base_path (or --model_config_file)"),
        (["--model_name", "m", "--model_base_path", "{tmp}/absent"], "is not a folder; export a model there"),
        (["--model_name", "m", "--model_base_path", "{tmp}", "--model_config_file", "x"], "not both"),
        (["--model_config_file", "{tmp}/absent.config"], "cannot read --model_config_file"),
        (["--model_name", "m", "--model_base_path", "{tmp}", "--max_batch_size", "0"], "--max_batch_size must be at least 1"),
        (["--model_name", "m", "--model_base_path", "{tmp}", "--version_policy", "specific"], "needs --versions"),
    ],
)
def test_bad_arguments_are_one_line_errors(tmp_path, capsys, arguments, message):
    code = main(["serve", *(argument.format(tmp=tmp_path) for argument in arguments)])
    error = capsys.readouterr().err
    assert code == 2
    assert error.startswith("bertserve: error: ") and message in error and error.count("\n") == 1


def test_port_in_use_is_a_one_line_error(tmp_path, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        code = main(["serve", "--model_name", "m", "--model_base_path", str(tmp_path), "--rest_api_port", str(port)])
    error = capsys.readouterr().err
    assert code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in error and "choose another --rest_api_port" in error


def test_device_and_threads_reach_the_loader(tiny_export):
    """--device/--intra_op_threads are passed to ExportedModel.load (CPU here: cuda needs a GPU)."""
    import asyncio

    from bertserve.serving.batching import BatchingOptions
    from bertserve.serving.manager import ModelConfig
    from bertserve.serving.server import ServerOptions, build

    config = ModelConfig(name="tiny", base_path=tiny_export.parent, version_policy="latest")
    manager, _, _, _ = build([config], ServerOptions(intra_op_threads=1), BatchingOptions())

    async def load_and_check():
        await manager.poll_once()  # loads the version (what the polling task does)
        try:
            return manager.servable("tiny").model.engine
        finally:
            await manager.stop()

    engine = asyncio.run(load_and_check())
    assert engine.session.get_session_options().intra_op_num_threads == 1  # an ONNX export: ONNX Runtime
