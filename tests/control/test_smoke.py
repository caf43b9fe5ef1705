from conftest import Platform, TenantClient, wait_done


def test_echo_ticket_end_to_end(platform: Platform, tenant_client: TenantClient) -> None:
    created = tenant_client.http.post("/v1/tickets", json={"bot": "echo", "input": {"hello": "world"}})
    assert created.status_code == 201, created.text
    ticket = wait_done(tenant_client.http, created.json()["id"])
    assert ticket["status"] == "done"
    assert ticket["result"] == {"hello": "world"}
    assert ticket["calls"] == 1
