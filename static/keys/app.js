// Behaviour of the keys pane: row selection, the one <dialog>, the API key
// dialog's listbox, copy. The server does every check; this only helps the user.
(function () {
  "use strict";

  const $ = (sel, root = document) => root.querySelector(sel);
  const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

  function toast(message, kind = "info") {
    const box = $("#toast");
    if (!box) return;
    box.textContent = message;
    box.dataset.kind = kind;
    box.classList.add("show");
    clearTimeout(box._timer);
    box._timer = setTimeout(() => box.classList.remove("show"), 4000);
  }

  // --- settings side panel -------------------------------------------------
  document.addEventListener("click", (event) => {
    const button = event.target.closest("button.section[aria-controls]");
    if (!button) return;
    const list = document.getElementById(button.getAttribute("aria-controls"));
    const open = button.getAttribute("aria-expanded") !== "true";
    button.setAttribute("aria-expanded", String(open));
    list.hidden = !open;
  });

  // --- row selection -------------------------------------------------------
  let selectedId = null;

  function rows() {
    return $$("#key-table tbody tr[data-id]");
  }

  function selectedRow() {
    return rows().find((r) => r.dataset.id === selectedId) || null;
  }

  function select(row, focus = true) {
    for (const r of rows()) {
      r.setAttribute("aria-selected", "false");
      r.tabIndex = -1;
    }
    selectedId = row ? row.dataset.id : null;
    if (row) {
      row.setAttribute("aria-selected", "true");
      row.tabIndex = 0;
      if (focus) row.focus();
    } else if (rows()[0]) {
      rows()[0].tabIndex = 0; // keeps the table reachable with Tab
    }
    for (const button of $$(".toolbar [data-action]")) button.disabled = !row;
  }

  function openDialogFrom(url) {
    htmx.ajax("GET", url, { target: "#dialog", swap: "innerHTML" });
  }

  function act(action) {
    const row = selectedRow();
    if (!row) return;
    const pattern = $(".pane")?.dataset["url" + action[0].toUpperCase() + action.slice(1)];
    if (!pattern) return;
    const url = pattern.replace("/0/", `/${row.dataset.id}/`);
    if (action === "logs") window.location.assign(url); // a page of its own, so it can be bookmarked
    else openDialogFrom(url);
  }

  document.addEventListener("click", (event) => {
    const actionButton = event.target.closest(".toolbar [data-action]");
    if (actionButton) return act(actionButton.dataset.action);
    const copyButton = event.target.closest(".copy-button");
    if (copyButton) return copy(copyButton);
    const row = event.target.closest("#key-table tbody tr[data-id]");
    // A click inside a text selection (dragging over the value to copy it) keeps the selection intact.
    if (row && !String(window.getSelection())) select(row);
  });

  document.addEventListener("dblclick", (event) => {
    const value = event.target.closest("#key-table .key-value");
    if (!value) return;
    const row = value.closest("tr");
    select(row, false);
    act("details");
  });

  document.addEventListener("keydown", (event) => {
    const row = event.target.closest && event.target.closest("#key-table tbody tr[data-id]");
    if (!row) return;
    const all = rows();
    const i = all.indexOf(row);
    const canChange = $(".pane")?.dataset.canChange === "true";
    if (event.key === "ArrowDown" && i < all.length - 1) select(all[i + 1]);
    else if (event.key === "ArrowUp" && i > 0) select(all[i - 1]);
    else if (event.key === "Home") select(all[0]);
    else if (event.key === "End") select(all[all.length - 1]);
    else if (event.key === " ") select(row);
    else if (event.key === "Enter") { select(row); act(canChange ? "edit" : "details"); }
    else if (event.key === "Delete" && canChange) { select(row); act("remove"); }
    else return;
    event.preventDefault();
  });

  // --- copy ----------------------------------------------------------------
  async function copy(button) {
    const value = button.dataset.copy;
    try {
      await navigator.clipboard.writeText(value);
    } catch (err) {
      // Without the async clipboard (plain http on another host), copy the selected text the old way.
      const range = document.createRange();
      range.selectNodeContents(button.previousElementSibling);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      if (!document.execCommand("copy")) return toast("Copy failed: select the value and press Ctrl+C.", "error");
    }
    button.textContent = "copied";
    setTimeout(() => (button.textContent = "copy"), 1500);
    toast("API key value copied to the clipboard.");
  }

  // --- the dialog ----------------------------------------------------------
  document.addEventListener("htmx:afterSwap", (event) => {
    const target = event.detail.target;
    if (target.id === "dialog") {
      if (!target.open) target.showModal();
      const first = $("[autofocus]", target) || $(".errors", target) || $("input, button", target);
      if (first) {
        if (first.classList.contains("errors")) first.tabIndex = -1;
        first.focus();
      }
      setUpKeyForm(target);
    }
    if (target.id === "key-table" || event.detail.elt.id === "key-table") {
      const keep = rows().find((r) => r.dataset.id === (pendingSelect ?? selectedId));
      pendingSelect = null;
      select(keep || null, false);
    }
  });

  document.addEventListener("click", (event) => {
    const close = event.target.closest("#dialog [data-close]");
    if (close) close.closest("dialog").close();
  });

  document.addEventListener("close", (event) => {
    if (event.target.id === "dialog") {
      event.target.replaceChildren();
      selectedRow()?.focus();
    }
  }, true);

  let pendingSelect = null;
  document.body.addEventListener("keysChanged", (event) => {
    const detail = event.detail || {};
    if (detail.select) pendingSelect = String(detail.select);
    const dialog = $("#dialog");
    if (dialog?.open) dialog.close();
    if (detail.message) toast(detail.message);
  });

  // 403, 404 and 5xx: say what happened instead of failing silently.
  document.addEventListener("htmx:responseError", (event) => {
    const xhr = event.detail.xhr;
    let message = `The server refused this (${xhr.status}).`;
    const doc = new DOMParser().parseFromString(xhr.responseText || "", "text/html");
    const explained = doc.getElementById("error-message");
    if (explained) message = explained.textContent.trim();
    toast(message, "error");
    if (xhr.status === 404) htmx.trigger(document.body, "keysChanged", {});
  });
  document.addEventListener("htmx:sendError", () => toast("The server cannot be reached. Nothing was saved.", "error"));

  // --- API key dialog: dependent controls and the listbox search ------------
  function setUpKeyForm(root) {
    const form = $(".key-form", root);
    if (!form) return;
    const allowed = $("#id_allowed_for_all", form);
    const loggedAll = $("#id_logged_for_all", form);
    const allExpiry = $("#all-logging [data-expiry]", form);
    const types = $("#types", form);
    const search = $("[data-type-search]", form);
    const count = $("[data-type-count]", form);

    function syncExpiry(box, enabled) {
      for (const el of $$("button, input", box)) el.disabled = !enabled;
    }

    function syncRow(row) {
      const selected = $("[data-selected]", row).checked;
      const logged = $("[data-logged]", row);
      logged.disabled = !selected;
      if (!selected) logged.checked = false;
      syncExpiry($("[data-expiry]", row), selected && logged.checked);
    }

    function syncAll() {
      loggedAll.disabled = !allowed.checked;
      if (!allowed.checked) loggedAll.checked = false;
      syncExpiry(allExpiry, allowed.checked && loggedAll.checked);
      // inert, not disabled: kept selections must still be posted while allowed for all is on.
      types.inert = allowed.checked;
      types.classList.toggle("is-disabled", allowed.checked);
      types.setAttribute("aria-disabled", String(allowed.checked));
      $("[data-all-note]", form).hidden = !allowed.checked;
    }

    function filter() {
      const needle = search.value.trim().toLowerCase();
      const all = $$("[data-type-row]", form);
      let shown = 0;
      for (const row of all) {
        const match = !needle || row.dataset.name.includes(needle);
        row.hidden = !match; // hidden rows keep their inputs, so their choices are still saved
        if (match) shown++;
      }
      const selected = all.filter((r) => $("[data-selected]", r).checked).length;
      $("[data-no-match]", form).hidden = shown > 0;
      count.textContent = `showing ${shown} of ${all.length} · ${selected} selected`;
    }

    form.addEventListener("change", (event) => {
      const row = event.target.closest("[data-type-row]");
      if (row) syncRow(row);
      if (event.target === allowed || event.target === loggedAll) syncAll();
      filter();
    });
    form.addEventListener("click", (event) => {
      const box = event.target.closest("[data-expiry]");
      if (!box) return;
      const input = $("input[type=date]", box);
      if (event.target.closest("[data-set-expiry]")) {
        $("[data-set-expiry]", box).hidden = true;
        $("[data-expiry-input]", box).hidden = false;
        input.focus();
        input.showPicker?.();
      } else if (event.target.closest("[data-clear-expiry]")) {
        input.value = "";
        $("[data-expiry-input]", box).hidden = true;
        const set = $("[data-set-expiry]", box);
        set.hidden = false;
        set.focus();
      }
    });
    search.addEventListener("input", filter);
    // Enter in the search box filters; it must not submit the dialog.
    search.addEventListener("keydown", (event) => { if (event.key === "Enter") event.preventDefault(); });

    $$("[data-type-row]", form).forEach(syncRow);
    syncAll();
    filter();
  }

  // Make the table reachable with Tab from the start.
  select(null, false);
})();
