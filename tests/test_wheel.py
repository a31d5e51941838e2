"""The wheel and the sdist, as a user gets them: `python -m build`, then the wheel installed into a clean
virtual environment (no checkout on its path) runs `numpynn predict picture.png` and `numpynn serve --port 0`
with the built-in model. Deselect with -m "not wheel" (about a minute: a build and an install of the
dependencies from pip's configured index)."""
import json
import os
import subprocess
import sys
import tarfile
import urllib.request
import zipfile

import numpy as np
import pytest
from PIL import Image

from numpynn.models import BUILTIN

from .conftest import REPO

pytestmark = [pytest.mark.wheel, pytest.mark.mnist]
INSIDE = [f"numpynn/models/{BUILTIN}.npz", "numpynn/web/static/index.html", "numpynn/web/static/app.js",
          "numpynn/web/static/style.css", "numpynn/commands/train.py"]


def run(*argv, **kwargs):
    result = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=300, **kwargs)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    return result


def test_the_wheel_installs_into_a_clean_venv_and_reads_a_digit_with_the_builtin_model(tmp_path, mnist_dir):
    from numpynn.data import load_raw

    dist = tmp_path / "dist"
    run(sys.executable, "-m", "build", "--outdir", dist, REPO)  # the sdist, then the wheel built from it
    wheel, = dist.glob("numpynn-*.whl")
    sdist, = dist.glob("numpynn-*.tar.gz")
    assert set(INSIDE) <= set(zipfile.ZipFile(wheel).namelist())
    with tarfile.open(sdist) as archive:
        top = archive.getnames()[0].split("/")[0]
        assert {f"{top}/{name}" for name in INSIDE} <= set(archive.getnames())

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)  # clean: no --system-site-packages
    env = {key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")}
    run(venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel, env=env)

    _, _, x_test, y_test = load_raw("mnist", mnist_dir, progress=False)
    Image.fromarray(x_test[0]).save(tmp_path / "picture.png")  # a 7
    work = tmp_path / "elsewhere"  # not the checkout: only the installed numpynn can be found
    work.mkdir()
    where = run(venv / "bin" / "python", "-c", "import numpynn; print(numpynn.__file__)", cwd=work, env=env)
    assert where.stdout.startswith(str(venv))
    result = run(venv / "bin" / "numpynn", "predict", tmp_path / "picture.png", "--json", cwd=work, env=env)
    assert result.stderr.startswith(f"model: built-in {BUILTIN} (")
    assert json.loads(result.stdout)[0]["digit"] == int(y_test[0])

    (tmp_path / "models").mkdir()  # empty: the built-in model is the only one
    serve = subprocess.Popen([venv / "bin" / "numpynn", "serve", "--port", "0", "--models", tmp_path / "models"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=work, env=env)
    try:
        line = serve.stdout.readline()  # "numpynn: serving 1 model (folder ...) on http://127.0.0.1:PORT/ ..."
        assert " on http://" in line, serve.stderr.read()
        url = line.split(" on ")[1].split()[0]
        assert urllib.request.urlopen(url, timeout=10).status == 200  # the page, from the installed static files
        pixels = (x_test[0] / 255).tolist()
        request = urllib.request.Request(url + "api/predict", data=json.dumps({"pixels": pixels}).encode(),
                                         headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=10).read())
        assert answer["digit"] == int(y_test[0]) and answer["model"] == f"{BUILTIN} (built-in)"
    finally:
        serve.terminate()
        stderr = serve.communicate(timeout=15)[1]
    assert f"model: built-in {BUILTIN} (" in stderr and "Traceback" not in stderr, stderr
