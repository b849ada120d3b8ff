"""Weights without network: clear, fast failures; torch's cache; local detector and backbone files."""

import socket
import threading
import time
import urllib.error
import urllib.request

import pytest
import torch
import torchvision
from torchvision.models import detection
from torchvision.ops.misc import FrozenBatchNorm2d

from napari_faster_rcnn.core.model import weights as weights_module
from napari_faster_rcnn.core.model.config import ModelConfig, preset
from napari_faster_rcnn.core.model.config_rules import ConfigError
from napari_faster_rcnn.core.model.detector import build_model
from napari_faster_rcnn.core.model.weights import WeightsError, cached_weights_path, fetch_weights

CLASSES = ["circle", "square"]
SMALL = dict(min_size=64, max_size=64)


@pytest.fixture
def hub_dir(tmp_path):
    """torch.hub's cache in a temporary folder, restored afterwards."""
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(tmp_path / "hub"))
    yield tmp_path / "hub"
    torch.hub.set_dir(previous)


@pytest.fixture
def no_network(monkeypatch):
    """Every download fails as on a machine without network; records the timeouts asked for."""
    calls = []

    def refuse(request, *args, timeout=None, **kwargs):
        calls.append((getattr(request, "full_url", request), timeout))
        raise urllib.error.URLError(socket.gaierror(-2, "Name or service not known"))

    monkeypatch.setattr(urllib.request, "urlopen", refuse)
    return calls


def test_download_failure_says_why_and_where_to_put_the_file(hub_dir, no_network):
    config = ModelConfig(classes=CLASSES, backbone="resnet18", weights="imagenet", **SMALL)
    with pytest.raises(WeightsError) as error:
        build_model(config)
    message = str(error.value)
    url = torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url
    assert "could not download the ImageNet weights for resnet18" in message
    assert "Name or service not known" in message
    assert url in message
    assert str(hub_dir / "checkpoints" / "resnet18-f37072fd.pth") in message
    assert "give the file's path as the weights" in message
    assert no_network == [(url, weights_module.DOWNLOAD_TIMEOUT_SECONDS)]  # a socket timeout is always set
    assert not list((hub_dir / "checkpoints").iterdir())  # no partial file left behind


def test_a_server_that_never_answers_times_out(hub_dir, monkeypatch):
    """A real socket that accepts the connection and then says nothing: the download gives up."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(server.accept()), daemon=True)
    thread.start()

    class Silent:
        url = f"http://127.0.0.1:{port}/weights-0123abcd.pth"
        name = "SILENT"

    start = time.perf_counter()
    try:
        with pytest.raises(WeightsError, match=r"no answer within 0\.5 s") as error:
            fetch_weights(Silent(), "test weights", timeout=0.5)
    finally:
        server.close()
        for connection, _ in accepted:
            connection.close()
    assert time.perf_counter() - start < 5
    assert str(hub_dir / "checkpoints" / "weights-0123abcd.pth") in str(error.value)


@pytest.fixture
def http_folder(tmp_path):
    """A local HTTP server over a folder: ``(folder, base_url)``."""
    import functools
    import http.server

    folder = tmp_path / "served"
    folder.mkdir()
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_download_checks_the_hash_and_lands_in_torch_cache(hub_dir, http_folder, tmp_path):
    import hashlib

    folder, base = http_folder
    state = {"weight": torch.arange(6.0).reshape(2, 3)}
    torch.save(state, tmp_path / "plain.pth")
    digest = hashlib.sha256((tmp_path / "plain.pth").read_bytes()).hexdigest()
    (folder / f"good-{digest[:8]}.pth").write_bytes((tmp_path / "plain.pth").read_bytes())
    (folder / "bad-00000000.pth").write_bytes((tmp_path / "plain.pth").read_bytes())

    class Entry:
        def __init__(self, name):
            self.url, self.name = f"{base}/{name}", "TEST"

    loaded = fetch_weights(Entry(f"good-{digest[:8]}.pth"), "test weights", timeout=5)
    assert torch.equal(loaded["weight"], state["weight"])
    assert (hub_dir / "checkpoints" / f"good-{digest[:8]}.pth").is_file()
    with pytest.raises(WeightsError, match=r"SHA-256 does not start with 00000000 \(a corrupt download\)"):
        fetch_weights(Entry("bad-00000000.pth"), "test weights", timeout=5)
    assert sorted(p.name for p in (hub_dir / "checkpoints").iterdir()) == [f"good-{digest[:8]}.pth"]
    with pytest.raises(WeightsError, match="HTTP 404 File not found"):
        fetch_weights(Entry("missing-12345678.pth"), "test weights", timeout=5)


def test_imagenet_weights_from_torch_cache(hub_dir, no_network):
    """A file placed by hand in torch's cache is used; the backbone is frozen as torchvision does."""
    reference = torchvision.models.resnet18()
    path = cached_weights_path(torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)

    model = build_model(ModelConfig(classes=CLASSES, backbone="resnet18", weights="imagenet", **SMALL))
    assert not no_network  # nothing was downloaded
    body = model.backbone.body
    assert torch.equal(body.layer3[0].conv1.weight, reference.layer3[0].conv1.weight)
    assert torch.equal(body.bn1.running_mean, reference.bn1.running_mean)
    assert isinstance(body.bn1, FrozenBatchNorm2d)
    # 3 trainable layers from pretrained weights: layer2-4 train, the stem and layer1 stay.
    assert not body.conv1.weight.requires_grad and not body.layer1[0].conv1.weight.requires_grad
    assert body.layer2[0].conv1.weight.requires_grad and body.layer4[0].conv1.weight.requires_grad


def test_coco_weights_get_a_new_box_predictor(hub_dir, no_network):
    torch.manual_seed(1)
    reference = detection.fasterrcnn_mobilenet_v3_large_fpn(weights=None, weights_backbone=None)
    path = cached_weights_path(detection.FasterRCNN_MobileNet_V3_Large_FPN_Weights.COCO_V1.url)
    path.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), path)

    model = build_model(preset("mobilenet", CLASSES, **SMALL))
    assert not no_network
    assert model.roi_heads.box_predictor.cls_score.out_features == 3  # background + 2, not COCO's 91
    assert torch.equal(model.rpn.head.conv[0][0].weight, reference.rpn.head.conv[0][0].weight)
    assert torch.equal(model.roi_heads.box_head.fc7.weight, reference.roi_heads.box_head.fc7.weight)
    assert torch.equal(model.backbone.fpn.layer_blocks[0][0].weight, reference.backbone.fpn.layer_blocks[0][0].weight)
    images = [torch.rand(3, 64, 64)]
    model.eval()
    with torch.no_grad():
        assert len(model(images)) == 1


def test_coco_weights_do_not_exist_for_other_architectures():
    config = ModelConfig(classes=CLASSES, backbone="resnet34")
    with pytest.raises(ConfigError, match=r"weights: torchvision has COCO weights only for .*resnet50.*v2.*mobilenet"):
        build_model(config, weights="coco")


def test_local_detector_file(tmp_path):
    config = preset("cpu", CLASSES)
    trained = build_model(config)
    path = tmp_path / "model.pt"
    torch.save(trained.state_dict(), path)
    # Given to build_model, the file only changes what is loaded: the modules are the config's.
    loaded = build_model(config, weights=str(path))
    assert loaded.state_dict().keys() == trained.state_dict().keys()
    for (name, ours), (_, theirs) in zip(loaded.state_dict().items(), trained.state_dict().items(), strict=True):
        assert torch.equal(ours, theirs), name
    assert all(p.requires_grad for p in loaded.parameters())
    # In the config, the file is a pretrained start: BatchNorm statistics are kept (frozen) and
    # 3 of the backbone's blocks train, as from torchvision's weights.
    started = build_model(config.replace(weights=str(path)))
    assert torch.equal(started.backbone.body.layer2[0].conv1.weight, trained.backbone.body.layer2[0].conv1.weight)
    assert torch.equal(started.backbone.body.bn1.running_var, trained.backbone.body.bn1.running_var)
    assert isinstance(started.backbone.body.bn1, FrozenBatchNorm2d)
    assert not started.backbone.body.conv1.weight.requires_grad
    assert started.backbone.body.layer2[0].conv1.weight.requires_grad


def test_local_lightning_checkpoint_with_other_classes(tmp_path):
    """A checkpoint's state_dict under a prefix; another class count gets a new predictor, the rest loads."""
    trained = build_model(preset("cpu", CLASSES))
    checkpoint = {"epoch": 3, "state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()},
                  "hyper_parameters": {"model": preset("cpu", CLASSES).to_dict()}}
    path = tmp_path / "last.ckpt"
    torch.save(checkpoint, path)
    loaded = build_model(preset("cpu", ["a", "b", "c", "d"], weights=str(path)))
    assert loaded.roi_heads.box_predictor.cls_score.out_features == 5
    assert torch.equal(loaded.roi_heads.box_head.fc6.weight, trained.roi_heads.box_head.fc6.weight)
    assert torch.equal(loaded.backbone.body.layer2[1].conv2.weight, trained.backbone.body.layer2[1].conv2.weight)


def test_local_backbone_file(tmp_path):
    """An ImageNet-style classifier's state dict loads into the backbone; FPN and heads stay new."""
    classifier = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save({"model": classifier.state_dict()}, path)
    model = build_model(ModelConfig(classes=CLASSES, backbone="resnet18", weights=str(path), **SMALL))
    assert torch.equal(model.backbone.body.layer4[1].conv2.weight, classifier.layer4[1].conv2.weight)
    # Cut after layer2: the classifier's later stages and head are not needed.
    cut = ModelConfig(classes=CLASSES, backbone="resnet18", fpn=False, returned_layers=[2], weights=str(path), **SMALL)
    model = build_model(cut)
    assert torch.equal(model.backbone.body.layer2[1].conv2.weight, classifier.layer2[1].conv2.weight)
    mobile = torchvision.models.mobilenet_v3_large()
    path = tmp_path / "mobile.pth"
    torch.save(mobile.state_dict(), path)  # keys "features.N...": the prefix is found
    model = build_model(ModelConfig(classes=CLASSES, backbone="mobilenet_v3_large", weights=str(path), **SMALL))
    assert torch.equal(model.backbone.body["16"][0].weight, mobile.features[16][0].weight)


def test_local_file_that_fits_neither(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    config = ModelConfig(classes=CLASSES, backbone="resnet18", weights=str(path), **SMALL)
    expected = (r"resnet34\.pth: neither a detector nor a backbone state dict for resnet18 with FPN .* "
                r"100 of 100 tensors fit \(the model has no layer1\.2\.conv1\.weight")
    with pytest.raises(WeightsError, match=expected):
        build_model(config)
    wrong_width = tmp_path / "slim.pt"
    torch.save(build_model(preset("cpu", CLASSES)).state_dict(), wrong_width)
    with pytest.raises(WeightsError, match=r"is \(32, 3, 7, 7\) in the file, \(64, 3, 7, 7\) in the model"):
        build_model(config, weights=str(wrong_width))


def test_unreadable_local_files(tmp_path):
    config = preset("cpu", CLASSES)
    with pytest.raises(WeightsError, match=r"missing\.pt: no such weights file"):
        build_model(config, weights=str(tmp_path / "missing.pt"))
    listing = tmp_path / "list.pt"
    torch.save([1, 2, 3], listing)
    with pytest.raises(WeightsError, match=r"list\.pt: holds no state dict"):
        build_model(config, weights=str(listing))
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(b"PK\x03\x04 not really")
    with pytest.raises(WeightsError, match=r"truncated\.pt: not a readable PyTorch file"):
        build_model(config, weights=str(truncated))


class Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_a_code_running_weights_file_is_refused(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": Payload()}, path)
    with pytest.raises(WeightsError, match=r"evil\.pt: refused to load"):
        build_model(preset("cpu", CLASSES), weights=str(path))
    assert "this must never run" not in capsys.readouterr().out


def test_a_folder_named_like_a_weights_or_checkpoint_file_is_said_to_be_a_folder(tmp_path):
    from napari_faster_rcnn.core.model.checkpoints import CheckpointError, load_checkpoint

    (tmp_path / "model.pt").mkdir()
    with pytest.raises(WeightsError, match=r"model\.pt: is a folder, not a weights file"):
        build_model(preset("cpu", CLASSES), weights=str(tmp_path / "model.pt"))
    with pytest.raises(CheckpointError, match=r"model\.pt: is a folder, not a checkpoint file"):
        load_checkpoint(tmp_path / "model.pt")
