"""A trivial handler for load runs (KEYS_HANDLER_MODULES=bench.echo_handler):
answers Inventory Import with a count of the items sent, so a load run
measures the key check and the call logging, not business logic."""

from keys.guard import ApiCall, register


@register("import", "inventory")
def inventory_import(call: ApiCall) -> dict:
    items = call.body.get("Data", {}).get("Items", []) if isinstance(call.body.get("Data"), dict) else []
    return {"Received": len(items) if isinstance(items, list) else 0}
