import huisclos.config
import huisclos.pipeline


def test_public_api_is_exported_and_sorted() -> None:
    for module in (huisclos.pipeline, huisclos.config):
        exported = module.__all__
        assert exported == sorted(exported)
        for name in exported:
            assert getattr(module, name).__module__.startswith("huisclos.") or name in {
                "apply_privacy_switches"
            }
