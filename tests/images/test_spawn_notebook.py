"""The core's GPUDockerSpawner spawns the built PyTorch notebook image through the hub."""

from tests.fakes.fake_gpus import FakeNVML
from tests.integration.hubrig import container_of, gpus_of


def test_hub_spawns_the_pytorch_notebook_with_its_gpu(start_hub, engine, notebook_image):
    gpus = FakeNVML.make_gpus(2)
    hub = start_hub(gpus, extra_config=f"c.GPUDockerSpawner.image = {notebook_image.tag!r}\n")
    hub.create_users("ann")
    hub.start_server("ann", {"gpus": 1})

    container = container_of(engine, "ann")
    assert notebook_image.tag in container.image.tags
    assert len(gpus_of(container)) == 1
    torch = container.exec_run(["/opt/conda/bin/python", "-c", "import torch; print(torch.__version__)"])
    assert torch.exit_code == 0 and torch.output.decode().strip() == notebook_image.torch_version
    assert container.exec_run(["id", "-u"]).output.decode().strip() == "1000"
