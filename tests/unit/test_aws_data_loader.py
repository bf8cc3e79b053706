"""The shared botocore session's data loader (store.aws.DataLoader) reads botocore's data as botocore's own
Loader does: the same services known, the same models, the same endpoints, AWS_DATA_PATH honoured; only faster."""

from __future__ import annotations

import json
from pathlib import Path

import botocore
import botocore.loaders
import botocore.session
import pytest
from botocore.exceptions import UnknownServiceError
from hypothesis import given, settings
from hypothesis import strategies as st

from store.aws import DataLoader, KnownServices

SERVICES = ("s3", "dynamodb", "kinesis", "ssm", "firehose", "sts")
STOCK = botocore.loaders.Loader()
STOCK_SERVICES = {kind: STOCK.list_available_services(kind) for kind in ("service-2", "endpoint-rule-set-1")}
OURS = DataLoader()


def sessions() -> tuple[botocore.session.Session, botocore.session.Session]:
    stock, ours = botocore.session.get_session(), botocore.session.get_session()
    ours.register_component("data_loader", DataLoader())
    return stock, ours


@pytest.mark.parametrize("service", SERVICES)
def test_a_client_made_through_it_has_botocores_model_and_endpoint(service: str) -> None:
    stock, ours = sessions()
    made = [
        s.create_client(service, region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing")
        for s in (stock, ours)
    ]
    models = [client.meta.service_model for client in made]
    assert models[0].operation_names == models[1].operation_names
    assert models[0].api_version == models[1].api_version
    for name in models[0].operation_names:
        a, b = models[0].operation_model(name), models[1].operation_model(name)
        assert (a.http, a.input_shape and a.input_shape.members.keys()) == (
            b.http,
            b.input_shape and b.input_shape.members.keys(),
        )
    assert made[0].meta.endpoint_url == made[1].meta.endpoint_url
    assert made[0].meta.partition == made[1].meta.partition


@pytest.mark.parametrize("kind", sorted(STOCK_SERVICES))
def test_the_full_list_is_botocores(kind: str) -> None:
    listed = OURS.list_available_services(kind)
    assert list(listed) == STOCK_SERVICES[kind]
    assert len(listed) == len(STOCK_SERVICES[kind])
    assert listed[0] == STOCK_SERVICES[kind][0]


@settings(max_examples=200, deadline=None)
@given(
    kind=st.sampled_from(sorted(STOCK_SERVICES)),
    name=st.one_of(
        st.sampled_from(STOCK_SERVICES["service-2"]),
        st.text(alphabet="abcdefghijklmnopqrstuvwxyz-./", max_size=12),
        st.sampled_from(["", ".", "..", "s3/..", "../data", "sdk-default-configuration.json", "endpoints.json"]),
    ),
)
def test_is_this_service_known_is_answered_as_botocore_does(kind: str, name: str) -> None:
    assert (name in KnownServices(OURS, kind)) == (name in STOCK_SERVICES[kind])


def test_an_unknown_service_is_refused_naming_the_known_ones() -> None:
    _, ours = sessions()
    with pytest.raises(UnknownServiceError) as refused:
        ours.create_client(
            "no-such-service", region_name="eu-west-1", aws_access_key_id="testing", aws_secret_access_key="testing"
        )
    assert "dynamodb" in str(refused.value)


def test_json_is_parsed_to_the_same_values_plain_and_gzipped() -> None:
    stock_file, ours_file = botocore.loaders.JSONFileLoader(), OURS.file_loader
    for name in ("endpoints", "partitions", "dynamodb/2012-08-10/service-2", "s3/2006-03-01/endpoint-rule-set-1"):
        path = str(Path(botocore.__file__).parent / "data" / name)
        assert ours_file.load_file(path) == stock_file.load_file(path)
    assert ours_file.load_file("/no/such/file") is None


def test_aws_data_path_adds_a_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The session of store.aws reads AWS_DATA_PATH as botocore's own loader does: a model placed there is found."""
    folder = tmp_path / "pets" / "2026-01-01"
    folder.mkdir(parents=True)
    model = {
        "version": "2.0",
        "metadata": {
            "apiVersion": "2026-01-01",
            "endpointPrefix": "pets",
            "protocol": "json",
            "jsonVersion": "1.0",
            "serviceId": "Pets",
            "signatureVersion": "v4",
            "targetPrefix": "Pets",
            "uid": "pets-2026-01-01",
        },
        "operations": {"ListPets": {"name": "ListPets", "http": {"method": "POST", "requestUri": "/"}}},
        "shapes": {},
    }
    (folder / "service-2.json").write_text(json.dumps(model))
    monkeypatch.setenv("AWS_DATA_PATH", str(tmp_path))
    from store import aws

    aws._session.cache_clear()
    try:
        made = aws.session()
        assert isinstance(made.get_component("data_loader"), DataLoader)
        assert "pets" in made.get_component("data_loader").list_available_services("service-2")
        assert made.get_service_model("pets").operation_names == ["ListPets"]
    finally:
        aws._session.cache_clear()
