import pytest

from gdlbook import profile


def test_explicit_profiles(monkeypatch):
    for name in ("smoke", "laptop", "full", " Smoke ", "FULL", "Laptop"):
        monkeypatch.setenv("GDL_PROFILE", name)
        assert profile.current() == name.strip().lower()


def test_unknown_profile_lists_valid_ones(monkeypatch):
    monkeypatch.setenv("GDL_PROFILE", "bogus")
    with pytest.raises(profile.ProfileError) as e:
        profile.current()
    msg = str(e.value)
    assert "bogus" in msg and "smoke" in msg and "laptop" in msg and "full" in msg


def test_unknown_profile_argument():
    with pytest.raises(profile.ProfileError, match="Valid profiles: smoke, laptop, full"):
        profile.current("medium")


@pytest.mark.parametrize("accel, expected", [(True, "full"), (False, "smoke")])
def test_unset_follows_the_hardware(monkeypatch, accel, expected):
    monkeypatch.delenv("GDL_PROFILE", raising=False)
    monkeypatch.setattr(profile, "accelerator_available", lambda: accel)
    assert profile.current() == expected
    monkeypatch.setenv("GDL_PROFILE", "  ")
    assert profile.current() == expected


def test_accelerator_detection_runs_on_this_backend():
    assert isinstance(profile.accelerator_available(), bool)


def test_select_picks_and_shows_both(monkeypatch, capsys):
    monkeypatch.setenv("GDL_PROFILE", "smoke")
    cfg = profile.select(smoke=dict(epochs=2, n_train=2000, name="a"),
                         full=dict(epochs=20, n_train=50_000, name="b"))
    assert (cfg.profile, cfg.epochs, cfg.n_train, cfg.name) == ("smoke", 2, 2000, "a")
    out = capsys.readouterr().out
    assert "smoke *" in out and "50,000" in out and "epochs" in out
    cfg = profile.select(smoke=dict(epochs=2), full=dict(epochs=20), profile="full", show=False)
    assert cfg.epochs == 20 and capsys.readouterr().out == ""


def test_select_rejects_mismatched_configurations():
    with pytest.raises(profile.ProfileError, match="differ"):
        profile.select(smoke=dict(epochs=2), full=dict(epochs=2, batch=3), profile="smoke")
    with pytest.raises(profile.ProfileError, match="reserved"):
        profile.select(smoke=dict(profile=1), full=dict(profile=2), profile="smoke")


def test_select_shows_three_profiles_and_picks_laptop(monkeypatch, capsys):
    monkeypatch.setenv("GDL_PROFILE", "laptop")
    cfg = profile.select(smoke=dict(epochs=2), laptop=dict(epochs=8), full=dict(epochs=20))
    assert (cfg.profile, cfg.epochs) == ("laptop", 8)
    head = capsys.readouterr().out.splitlines()[0].split()
    assert head == ["parameter", "smoke", "laptop", "*", "full"]


def test_laptop_without_a_laptop_configuration_is_refused(monkeypatch):
    monkeypatch.setenv("GDL_PROFILE", "laptop")
    with pytest.raises(profile.ProfileError, match="no 'laptop' configuration"):
        profile.select(smoke=dict(epochs=2), full=dict(epochs=20))
    with pytest.raises(profile.ProfileError, match="laptop configurations differ"):
        profile.select(smoke=dict(epochs=2), laptop=dict(steps=3), full=dict(epochs=20))
