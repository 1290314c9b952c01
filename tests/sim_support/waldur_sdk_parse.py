"""Asks the simulator for every call the gateway makes, as the gateway makes it, and parses each
answer with Waldur's generated SDK (PyPI `waldur-api-client`, pinned in .ci/requirements.txt).

Each request is sent with the SDK's own HTTP client (token auth, `Token` prefix) but with the
gateway's path, query and body (32-digit uuids, decimal strings), and its answer goes through the
SDK operation module's response builder: the status must be one the SDK expects and the body must
load into the SDK's models (`from_dict`: required keys, uuids, dates, enums).

Usage: python waldur_sdk_parse.py BASE_URL TOKEN DEMO_JSON
  BASE_URL  the simulator's origin, e.g. http://127.0.0.1:8080
  TOKEN     the service provider's token
  DEMO_JSON {"offering": ..., "resource_ok": ..., ...} (the demo uuids the calls name)

Prints one line per call, `ok <name>` or `FAIL <name>: <why>`, then `N passed, N failed`; exits 1
when any call failed.
"""

import importlib
import json
import sys
import traceback

from waldur_api_client import AuthenticatedClient


def main() -> int:
    base, token, demo = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    client = AuthenticatedClient(base_url=base, token=token, prefix="Token")
    http = client.get_httpx_client()
    passed, failed = 0, 0

    def call(name, module, method, path, params=None, body=None, check=None):
        nonlocal passed, failed
        try:
            mod = importlib.import_module(f"waldur_api_client.api.{module}")
            response = http.request(method, f"/api/{path}", params=params, json=body)
            parsed = mod._build_response(client=client, response=response).parsed
            if check is not None:
                check(parsed)
            passed += 1
            print(f"ok {name} ({response.status_code})")
        except Exception as e:  # noqa: BLE001 - every failure is reported, none stops the run
            failed += 1
            where = traceback.extract_tb(e.__traceback__)[-1]
            print(f"FAIL {name}: {type(e).__name__}: {e} (at {where.filename}:{where.lineno})")

    def non_empty(parsed):
        assert isinstance(parsed, list) and parsed, f"expected a non-empty list, got {parsed!r}"

    o, sp = demo["offering"], demo["service_provider"]
    res_ok, res_creating, res_slurm = demo["resource_ok"], demo["resource_creating"], demo["resource_slurm"]
    order_pending, order_slurm = demo["order_pending"], demo["order_slurm_executing"]

    # Reads.
    call("orders list", "marketplace_orders.marketplace_orders_list", "GET", "marketplace-orders/",
         [("offering_uuid", o), ("state", "pending-provider"), ("state", "executing"), ("o", "-created"),
          ("page", "1"), ("page_size", "10")], check=non_empty)
    call("orders list, every state", "marketplace_orders.marketplace_orders_list", "GET",
         "marketplace-orders/", [("page_size", "100")], check=non_empty)
    call("order retrieve", "marketplace_orders.marketplace_orders_retrieve", "GET",
         f"marketplace-orders/{order_pending}/")
    call("provider resources list", "marketplace_provider_resources.marketplace_provider_resources_list",
         "GET", "marketplace-provider-resources/", [("offering_uuid", o), ("o", "-created"), ("page_size", "100")],
         check=non_empty)
    call("provider resource retrieve", "marketplace_provider_resources.marketplace_provider_resources_retrieve",
         "GET", f"marketplace-provider-resources/{res_ok}/")
    call("provider resource team", "marketplace_provider_resources.marketplace_provider_resources_team_list",
         "GET", f"marketplace-provider-resources/{res_ok}/team/", check=non_empty)
    call("provider resource plan periods",
         "marketplace_provider_resources.marketplace_provider_resources_plan_periods_list",
         "GET", f"marketplace-provider-resources/{res_ok}/plan_periods/", check=non_empty)
    call("offering users list", "marketplace_offering_users.marketplace_offering_users_list", "GET",
         "marketplace-offering-users/", [("offering_uuid", o), ("user_uuid", demo["user_alice"])], check=non_empty)
    call("component usages list", "marketplace_component_usages.marketplace_component_usages_list", "GET",
         "marketplace-component-usages/", [("resource_uuid", res_ok), ("page_size", "100")], check=non_empty)
    call("service providers list", "marketplace_service_providers.marketplace_service_providers_list", "GET",
         "marketplace-service-providers/", [("customer_uuid", demo["sp_customer"])], check=non_empty)
    call("service provider projects", "marketplace_service_providers.marketplace_service_providers_projects_list",
         "GET", f"marketplace-service-providers/{sp}/projects/", [("page_size", "100")], check=non_empty)
    call("service provider users", "marketplace_service_providers.marketplace_service_providers_users_list",
         "GET", f"marketplace-service-providers/{sp}/users/", [("page_size", "100")], check=non_empty)
    call("service provider keys", "marketplace_service_providers.marketplace_service_providers_keys_list",
         "GET", f"marketplace-service-providers/{sp}/keys/", [("page_size", "100")], check=non_empty)
    call("service provider project permissions",
         "marketplace_service_providers.marketplace_service_providers_project_permissions_list",
         "GET", f"marketplace-service-providers/{sp}/project_permissions/", [("page_size", "100")],
         check=non_empty)
    call("offering projects",
         "marketplace_provider_offerings.marketplace_provider_offerings_list_customer_projects_list",
         "GET", f"marketplace-provider-offerings/{o}/list_customer_projects/", [("page_size", "100")],
         check=non_empty)
    call("offering users",
         "marketplace_provider_offerings.marketplace_provider_offerings_list_customer_users_list",
         "GET", f"marketplace-provider-offerings/{o}/list_customer_users/", [("page_size", "100")],
         check=non_empty)
    call("provider offering retrieve", "marketplace_provider_offerings.marketplace_provider_offerings_retrieve",
         "GET", f"marketplace-provider-offerings/{o}/")
    call("public offering retrieve", "marketplace_public_offerings.marketplace_public_offerings_retrieve",
         "GET", f"marketplace-public-offerings/{o}/")
    call("users list", "users.users_list", "GET", "users/", [("username", "alice")], check=non_empty)

    # Writes, with the gateway's bodies.
    call("set_usage", "marketplace_component_usages.marketplace_component_usages_set_usage", "POST",
         "marketplace-component-usages/set_usage/",
         body={"resource": res_ok, "date": demo["today"], "usages": [{"type": "cpu_k_hours", "amount": "12.50"}]})
    call("set_backend_id", "marketplace_provider_resources.marketplace_provider_resources_set_backend_id",
         "POST", f"marketplace-provider-resources/{res_creating}/set_backend_id/", body={"backend_id": "sdk-1"})
    call("submit_report", "marketplace_provider_resources.marketplace_provider_resources_submit_report",
         "POST", f"marketplace-provider-resources/{res_ok}/submit_report/",
         body={"report": [{"header": "Access", "body": "ssh lumi"}]})
    call("set_limits", "marketplace_provider_resources.marketplace_provider_resources_set_limits",
         "POST", f"marketplace-provider-resources/{res_ok}/set_limits/", body={"limits": {"cpu_k_hours": 100}})
    call("set_as_erred", "marketplace_provider_resources.marketplace_provider_resources_set_as_erred",
         "POST", f"marketplace-provider-resources/{res_slurm}/set_as_erred/",
         body={"error_message": "sdk", "error_traceback": ""})
    call("set_as_ok", "marketplace_provider_resources.marketplace_provider_resources_set_as_ok",
         "POST", f"marketplace-provider-resources/{res_slurm}/set_as_ok/", body={})
    call("approve_by_provider", "marketplace_orders.marketplace_orders_approve_by_provider", "POST",
         f"marketplace-orders/{order_pending}/approve_by_provider/", body={})
    call("set_state_done", "marketplace_orders.marketplace_orders_set_state_done", "POST",
         f"marketplace-orders/{order_slurm}/set_state_done/", body={})
    created = {}

    def keep(parsed):
        created["uuid"] = parsed.uuid.hex

    call("offering user create", "marketplace_offering_users.marketplace_offering_users_create", "POST",
         "marketplace-offering-users/",
         body={"offering_uuid": o, "user_uuid": demo["user_bob"], "username": "bob_sdk"}, check=keep)
    if "uuid" in created:
        call("offering user partial update",
             "marketplace_offering_users.marketplace_offering_users_partial_update", "PATCH",
             f"marketplace-offering-users/{created['uuid']}/", body={"username": "bob_sdk2"})
    call("set_offerings_username",
         "marketplace_service_providers.marketplace_service_providers_set_offerings_username", "POST",
         f"marketplace-service-providers/{sp}/set_offerings_username/",
         body={"user_uuid": demo["user_bob"], "username": "bob_all"})

    # Controls: the harness must be able to fail. An answer with a status the SDK does not expect
    # (Waldur's 400 for a wrong-case state) and a body its models cannot load must both be refused.
    def refused(name, attempt):
        nonlocal passed, failed
        try:
            attempt()
        except Exception as e:  # noqa: BLE001
            passed += 1
            print(f"ok control {name} ({type(e).__name__})")
            return
        failed += 1
        print(f"FAIL control {name}: the SDK accepted it")

    from waldur_api_client.api.marketplace_orders import marketplace_orders_list
    from waldur_api_client.models.order_details import OrderDetails

    refused("unexpected status", lambda: marketplace_orders_list._build_response(
        client=client, response=http.get("/api/marketplace-orders/", params={"state": "ok"})))
    refused("malformed body", lambda: OrderDetails.from_dict({"uuid": "not-a-uuid", "created": "yesterday"}))

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
