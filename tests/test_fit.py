"""A 200-step fit of random Gaussians to a target image on the CPU reaches PSNR >= 30 dB."""

from pathlib import Path

from PIL import Image

from splat4d.demo import DemoConfig, ImageFit, demo_target, main


def test_fit_reaches_30db():
    fit = ImageFit(demo_target(64, 48), n_gaussians=800)
    assert fit.psnr()[1] < 15.0  # the random initialisation is far from the target
    for _ in range(200):
        fit.step()
    assert fit.psnr()[1] >= 30.0


def test_demo_writes_png(tmp_path: Path):
    out = tmp_path / "demo.png"
    psnr = main(DemoConfig(out=out, steps=5, n_gaussians=200, width=32, height=24))
    assert out.exists() and Image.open(out).size == (64, 24)
    assert psnr > 5.0
