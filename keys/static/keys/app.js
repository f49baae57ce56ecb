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
  // On a phone the side panel is folded behind the "settings menu" button.
  document.addEventListener("click", (event) => {
    const toggle = event.target.closest(".menu-toggle");
    if (!toggle) return;
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    toggle.closest(".settings").classList.toggle("menu-open", open);
  });

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

  // A double-click on a value shows its API types, but a triple-click (which starts as a
  // double-click) selects the value to copy it: wait a moment for a third click first.
  const TRIPLE_CLICK_MS = 400;
  let detailsTimer = null;

  document.addEventListener("dblclick", (event) => {
    const value = event.target.closest("#key-table .key-value");
    if (!value) return;
    const row = value.closest("tr");
    clearTimeout(detailsTimer);
    detailsTimer = setTimeout(() => {
      select(row, false);
      act("details");
    }, TRIPLE_CLICK_MS);
  });

  document.addEventListener("click", (event) => {
    const value = event.target.closest("#key-table .key-value");
    if (!value || event.detail < 3) return;
    clearTimeout(detailsTimer);
    // Just the GUID, not the rest of the cell (the copy button's label).
    const range = document.createRange();
    range.selectNodeContents(value);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
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
  // Every way out of the dialog (escape, cancel, a click outside) asks first when
  // the API key form holds changes; the ask is a bar in the dialog, not a browser popup.
  let savedState = null;

  function formState(form) {
    return new URLSearchParams(new FormData(form)).toString();
  }

  function isDirty(dialog) {
    const form = $(".key-form", dialog);
    return Boolean(form && savedState !== null && formState(form) !== savedState);
  }

  function requestClose(dialog) {
    const discard = $("[data-discard]", dialog);
    if (discard && isDirty(dialog)) {
      discard.hidden = false;
      discard.scrollIntoView({ block: "nearest" });
      $("[data-keep-editing]", discard).focus();
      return;
    }
    dialog.close();
  }

  document.addEventListener("htmx:afterSwap", (event) => {
    // A history restore (the back button) swaps without a request: no detail.target or detail.elt.
    const target = event.detail.target || event.target;
    const elt = event.detail.elt || event.target;
    if (target.id === "dialog") {
      if (!target.open) target.showModal();
      const first = $("[autofocus]", target) || $(".errors", target) || $("input, button", target);
      if (first) {
        if (first.classList.contains("errors")) first.tabIndex = -1;
        first.focus();
      }
      setUpKeyForm(target);
    }
    if (target.id === "key-table" || elt.id === "key-table") {
      const keep = rows().find((r) => r.dataset.id === (pendingSelect ?? selectedId));
      pendingSelect = null;
      select(keep || null, false);
    }
  });

  document.addEventListener("click", (event) => {
    const dialog = event.target.closest("#dialog");
    if (!dialog) return;
    if (event.target === dialog) {
      // The backdrop: a click on the dialog element itself but outside its box.
      const box = dialog.getBoundingClientRect();
      const inside = event.clientX >= box.left && event.clientX <= box.right && event.clientY >= box.top && event.clientY <= box.bottom;
      if (!inside) requestClose(dialog);
    } else if (event.target.closest("[data-close]")) requestClose(dialog);
    else if (event.target.closest("[data-keep-editing]")) {
      $("[data-discard]", dialog).hidden = true;
      $("[data-close]", dialog)?.focus();
    } else if (event.target.closest("[data-discard-changes]")) dialog.close();
  });

  // Escape: the browser's cancel event, which can be refused while there are changes.
  document.addEventListener("cancel", (event) => {
    if (event.target.id !== "dialog" || !isDirty(event.target)) return;
    event.preventDefault();
    requestClose(event.target);
  }, true);

  document.addEventListener("close", (event) => {
    if (event.target.id === "dialog") {
      savedState = null;
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

  // --- API key dialog: dependent controls, warnings and the listbox ---------
  const ISO_DATE = /^\d{4}-\d{2}-\d{2}$/;

  function today() {
    // The site's day is the server's business; the browser's own day is close enough for a warning.
    const now = new Date();
    return `${now.getFullYear()}-${String(now.getMonth() + 1).padStart(2, "0")}-${String(now.getDate()).padStart(2, "0")}`;
  }

  function setUpKeyForm(root) {
    const form = $(".key-form", root);
    if (!form) return;
    const active = $("#id_is_active", form);
    const allowed = $("#id_allowed_for_all", form);
    const loggedAll = $("#id_logged_for_all", form);
    const allExpiry = $("#all-logging [data-expiry]", form);
    const types = $("#types", form);
    const search = $("[data-type-search]", form);
    const count = $("[data-type-count]", form);
    const selectedOnly = $("[data-selected-only]", form);
    const body = $(".types-table tbody", form);
    // The order the dialog opened with (selected first on an edit), kept while searching.
    const openOrder = $$("[data-type-row]", form);

    function syncExpiry(box, enabled) {
      for (const el of $$("button, input", box)) el.disabled = !enabled;
      // A date that no longer applies is not left on show, disabled; it comes back with logged.
      const input = $("input", box);
      $("[data-expiry-input]", box).hidden = !(enabled && (input.value || input === document.activeElement));
      $("[data-set-expiry]", box).hidden = !$("[data-expiry-input]", box).hidden;
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

    function warn() {
      const selectedRows = $$("[data-type-row]", form).filter((r) => $("[data-selected]", r).checked);
      const ended = (input) => ISO_DATE.test(input.value) && input.value < today();
      const problems = [];
      if (!active.checked) problems.push("is inactive: every call with it will be refused.");
      const expires = $("#id_expires_at", form).value.trim().replace(" ", "T");
      if (/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2})?$/.test(expires) && new Date(expires) <= new Date()) {
        problems.push("has expired: every call with it will be refused.");
      }
      if (!allowed.checked && selectedRows.length === 0) problems.push("calls nothing: it is neither allowed for all nor has an API type selected.");
      const dates = allowed.checked
        ? (loggedAll.checked ? [$("#id_logging_until", form)] : [])
        : selectedRows.filter((r) => $("[data-logged]", r).checked).map((r) => $("[data-expiry] input", r));
      if (dates.some(ended)) problems.push("has a logging until date in the past: those calls will not be stored.");
      const box = $("[data-warnings]", form);
      $("ul", box).replaceChildren(...problems.map((text) => Object.assign(document.createElement("li"), { textContent: text })));
      box.hidden = problems.length === 0;
    }

    // Every word of the query, in any order, in the name, the API id or the path.
    function filter() {
      const words = search.value.trim().toLowerCase().split(/\s+/).filter(Boolean);
      const query = words.join(" ");
      const all = $$("[data-type-row]", form);
      let shown = 0;
      for (const row of all) {
        const match = words.every((w) => row.dataset.search.includes(w)) &&
          (!selectedOnly.checked || $("[data-selected]", row).checked);
        row.hidden = !match; // hidden rows keep their inputs, so their choices are still saved
        if (match) shown++;
      }
      // The full name of a type shows that type first (CHQ: the full name shows that API).
      const exact = query && all.find((r) => r.dataset.name === query);
      const order = exact ? [exact, ...openOrder.filter((r) => r !== exact)] : openOrder;
      if (order.some((r, i) => all[i] !== r)) body.prepend(...order);
      const selected = all.filter((r) => $("[data-selected]", r).checked).length;
      $("[data-no-match]", form).hidden = shown > 0;
      count.textContent = `showing ${shown} of ${all.length} · ${selected} selected`;
    }

    function shownRows() {
      return $$("[data-type-row]", form).filter((r) => !r.hidden);
    }

    function setSelected(rowsToSet, value) {
      for (const row of rowsToSet) {
        $("[data-selected]", row).checked = value;
        syncRow(row);
      }
    }

    function logSelected() {
      const until = $("[data-log-selected-until]", form);
      const value = until.value.trim();
      if (value && !ISO_DATE.test(value)) {
        toast("Write the date as YYYY-MM-DD, or leave it empty for no end.", "error");
        until.focus();
        return;
      }
      const selectedRows = $$("[data-type-row]", form).filter((r) => $("[data-selected]", r).checked);
      if (!selectedRows.length) return toast("Select API types first.", "error");
      for (const row of selectedRows) {
        $("[data-logged]", row).checked = true;
        $("[data-expiry] input", row).value = value;
        syncRow(row);
      }
      toast(`${selectedRows.length} selected API type${selectedRows.length === 1 ? "" : "s"} logged${value ? ` until ${value}` : ""}.`);
    }

    function refresh() {
      filter();
      warn();
    }

    form.addEventListener("change", (event) => {
      const row = event.target.closest("[data-type-row]");
      if (row) syncRow(row);
      if (event.target === allowed || event.target === loggedAll) syncAll();
      refresh();
    });
    form.addEventListener("input", (event) => {
      if (event.target.matches("[data-expiry] input, #id_expires_at")) warn();
    });
    form.addEventListener("click", (event) => {
      if (event.target.closest("[data-select-shown]")) return (setSelected(shownRows(), true), refresh());
      if (event.target.closest("[data-unselect-shown]")) return (setSelected(shownRows(), false), refresh());
      if (event.target.closest("[data-log-selected]")) return (logSelected(), refresh());
      const box = event.target.closest("[data-expiry]");
      if (!box) return;
      const input = $("input", box);
      if (event.target.closest("[data-set-expiry]")) {
        $("[data-set-expiry]", box).hidden = true;
        $("[data-expiry-input]", box).hidden = false;
        input.focus();
      } else if (event.target.closest("[data-clear-expiry]")) {
        input.value = "";
        $("[data-expiry-input]", box).hidden = true;
        const set = $("[data-set-expiry]", box);
        set.hidden = false;
        set.focus();
        warn();
      }
    });
    search.addEventListener("input", filter);
    // Enter in the search boxes filters or applies; it must not submit the dialog.
    for (const input of [search, $("[data-log-selected-until]", form)]) {
      input.addEventListener("keydown", (event) => { if (event.key === "Enter") event.preventDefault(); });
    }

    $$("[data-type-row]", form).forEach(syncRow);
    syncAll();
    refresh();
    // A form sent back with errors holds edits that were not saved: closing it still asks.
    savedState = $(".errors", form) ? "" : formState(form);
  }


  // --- a small calendar for the ISO date fields ------------------------------
  // The fields stay text in YYYY-MM-DD, typed or chosen here. Keyboard as in the WAI-ARIA
  // date picker pattern: arrows move a day or a week, Page Up/Down a month, Home/End the
  // week's ends, Enter or Space chooses, Escape closes; focus returns to the field.
  const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December"];
  const iso = (d) => `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}-${String(d.getDate()).padStart(2, "0")}`;
  const parseIso = (text) => {
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(text || "");
    const d = m && new Date(Number(m[1]), Number(m[2]) - 1, Number(m[3]));
    return d && iso(d) === text ? d : null;
  };
  const addDays = (d, n) => new Date(d.getFullYear(), d.getMonth(), d.getDate() + n);
  const addMonths = (d, n) => {
    const last = new Date(d.getFullYear(), d.getMonth() + n + 1, 0).getDate();
    return new Date(d.getFullYear(), d.getMonth() + n, Math.min(d.getDate(), last));
  };
  let calendar = null;

  function closeCalendar(focusField) {
    if (!calendar) return;
    const { box, button, field } = calendar;
    box.remove();
    button.setAttribute("aria-expanded", "false");
    calendar = null;
    if (focusField) field.focus();
  }

  function drawCalendar(day) {
    const { box, field } = calendar;
    calendar.day = day;
    const chosen = parseIso(field.value);
    const today = iso(new Date());
    $("[data-month]", box).textContent = `${MONTHS[day.getMonth()]} ${day.getFullYear()}`;
    const first = new Date(day.getFullYear(), day.getMonth(), 1);
    let cell = addDays(first, -((first.getDay() + 6) % 7)); // weeks start on Monday
    const body = $("tbody", box);
    body.replaceChildren();
    for (let week = 0; week < 6; week += 1) {
      const tr = document.createElement("tr");
      for (let n = 0; n < 7; n += 1, cell = addDays(cell, 1)) {
        const td = document.createElement("td");
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = String(cell.getDate());
        b.dataset.date = iso(cell);
        // The visible day number first (WCAG's label-in-name), then the date as the field writes it.
        b.setAttribute("aria-label", `${cell.getDate()} ${MONTHS[cell.getMonth()]} ${cell.getFullYear()}, ${iso(cell)}`);
        b.tabIndex = iso(cell) === iso(day) ? 0 : -1;
        if (cell.getMonth() !== day.getMonth()) b.classList.add("other-month");
        if (b.dataset.date === today) b.setAttribute("aria-current", "date");
        if (chosen && b.dataset.date === iso(chosen)) b.setAttribute("aria-pressed", "true");
        td.append(b);
        tr.append(td);
      }
      body.append(tr);
    }
    $(`button[data-date="${iso(day)}"]`, box).focus();
  }

  function openCalendar(button) {
    closeCalendar(false);
    const field = document.getElementById(button.dataset.calendar);
    const box = document.createElement("div");
    box.className = "calendar";
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-label", `choose a date for ${field.labels[0] ? field.labels[0].textContent : "the field"}`);
    box.innerHTML =
      '<div class="calendar-head"><button type="button" data-step="-1" aria-label="previous month">‹</button>' +
      '<h3 data-month aria-live="polite"></h3><button type="button" data-step="1" aria-label="next month">›</button></div>' +
      '<table role="grid"><thead><tr>' +
      ["Mo", "Tu", "We", "Th", "Fr", "Sa", "Su"].map((d) => `<th scope="col" abbr="${d}">${d}</th>`).join("") +
      "</tr></thead><tbody></tbody></table>" +
      '<div class="calendar-foot"><button type="button" class="link" data-close>close</button></div>';
    // Inside the open <dialog> (the top layer), fixed beside the button, kept on screen.
    (button.closest("dialog") || document.body).append(box);
    const at = button.getBoundingClientRect();
    box.style.top = `${Math.max(8, Math.min(at.bottom + 4, window.innerHeight - box.offsetHeight - 8))}px`;
    box.style.left = `${Math.max(8, Math.min(at.left, window.innerWidth - box.offsetWidth - 8))}px`;
    button.setAttribute("aria-expanded", "true");
    calendar = { box, button, field };
    drawCalendar(parseIso(field.value) || new Date());
  }

  document.addEventListener("click", (event) => {
    const opener = event.target.closest("[data-calendar]");
    if (opener) return opener.getAttribute("aria-expanded") === "true" ? closeCalendar(true) : openCalendar(opener);
    if (!calendar) return;
    const { box, field } = calendar;
    if (!box.contains(event.target)) return closeCalendar(false);
    const step = event.target.closest("[data-step]");
    if (step) return drawCalendar(addMonths(calendar.day, Number(step.dataset.step)));
    if (event.target.closest("[data-close]")) return closeCalendar(true);
    const day = event.target.closest("button[data-date]");
    if (day) {
      field.value = day.dataset.date;
      field.dispatchEvent(new Event("input", { bubbles: true }));
      field.dispatchEvent(new Event("change", { bubbles: true }));
      closeCalendar(true);
    }
  });

  document.addEventListener("keydown", (event) => {
    if (!calendar || !calendar.box.contains(event.target)) return;
    if (event.key === "Escape") {
      event.preventDefault(); // closes the calendar only, not the API key dialog around it
      event.stopPropagation();
      return closeCalendar(true);
    }
    if (!event.target.dataset.date) return;
    const moves = {
      ArrowLeft: (d) => addDays(d, -1),
      ArrowRight: (d) => addDays(d, 1),
      ArrowUp: (d) => addDays(d, -7),
      ArrowDown: (d) => addDays(d, 7),
      PageUp: (d) => addMonths(d, -1),
      PageDown: (d) => addMonths(d, 1),
      Home: (d) => addDays(d, -((d.getDay() + 6) % 7)),
      End: (d) => addDays(d, 6 - ((d.getDay() + 6) % 7)),
    };
    if (moves[event.key]) {
      event.preventDefault();
      drawCalendar(moves[event.key](parseIso(event.target.dataset.date)));
    }
  }, true);

  // Make the table reachable with Tab from the start.
  select(null, false);
})();
