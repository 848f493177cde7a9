"""Issue 28.6: config values that cannot work are refused before anything runs: NaN/inf in any float field (lists
included), widths that would allocate hundreds of GB, scheduler strings that are not addresses; an unreachable
scheduler is one line with its address."""

import pytest

from medtl.config import load_config
from medtl.errors import ConfigError, MedtlError


@pytest.mark.parametrize("override", ["data.spacing=[.nan,1,1]", "data.spacing=[1,.inf,1]", "train.lr=.nan",
                                      "adapt.lambda_max=-.inf", "data.augment.rotate_deg=.nan"])
def test_nan_and_infinity_are_refused_in_every_float_field(override):
    with pytest.raises(ConfigError, match="finite number"):
        load_config(None, [override])


@pytest.mark.parametrize("override", ["adapt.discriminator_width=1000000000", "ssl.hidden_dim=1000000000"])
def test_widths_that_would_exhaust_memory_are_refused(override):
    with pytest.raises(ConfigError, match="less than or equal to 65536"):
        load_config(None, [override])


@pytest.mark.parametrize("address", ["not an address", "localhost", "tcp://host:99999", "http//x:1"])
def test_a_scheduler_that_is_not_an_address_is_refused(address):
    with pytest.raises(ConfigError, match="is not a scheduler address"):
        load_config(None, [f"run.scheduler={address}"])


@pytest.mark.parametrize("address", ["tcp://10.0.0.5:8786", "10.0.0.5:8786", "ray://head:10001", "auto",
                                     "[::1]:8786"])
def test_addresses_of_every_form_pass(address):
    assert load_config(None, [f"run.scheduler={address}"]).run.scheduler == address


def test_an_unreachable_dask_scheduler_is_one_line_with_its_address(monkeypatch):
    pytest.importorskip("distributed")
    from medtl.executors import engines

    monkeypatch.setattr(engines, "CONNECT_TIMEOUT", "2s")
    with pytest.raises(MedtlError) as error:
        engines.open_executor("dask", "tcp://127.0.0.1:1")
    message = str(error.value)
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:1" in message and "\n" not in message


@pytest.mark.parametrize("overlap,dims", [(0.999, 2), (0.9, 3)])
def test_an_overlap_that_multiplies_the_windows_is_refused_with_the_count(overlap, dims):
    """Issue 28.11: overlap 0.999 ran one forward pass per pixel offset (killed after 150 s)."""
    patch = "[64,64]" if dims == 2 else "[32,32,32]"
    with pytest.raises(ConfigError, match=r"covered by about [\d,]+ windows .* at most 0.75"):
        load_config(None, [f"data.dims={dims}", "data.mode=patch", f"data.patch_size={patch}",
                           f"data.sliding_window.overlap={overlap}"])
    load_config(None, [f"data.dims={dims}", "data.mode=patch", f"data.patch_size={patch}",
                       "data.sliding_window.overlap=0.75"])


def test_a_patch_batch_of_gigabytes_is_refused_with_its_size():
    with pytest.raises(ConfigError, match=r"one batch of windows is [\d,]+ MB"):
        load_config(None, ["data.mode=patch", "data.patch_size=[8192,8192]"])
