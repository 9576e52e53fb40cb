// The request form's live estimate: after each change (typing pauses 150 ms) the form's fields go to the
// estimate endpoint, which runs pool request's checks and answers with the escaped figures as HTML.
// Written for this portal; nothing is loaded from elsewhere.
(function () {
  "use strict";
  var form = document.getElementById("request-form");
  var target = document.getElementById("estimate");
  if (!form || !target) { return; }
  var timer = null;
  var sent = 0;
  function update() {
    var data = new FormData(form);
    data.delete("csrf");
    var query = new URLSearchParams(data).toString();
    var mine = ++sent;
    target.setAttribute("aria-busy", "true");
    fetch(form.getAttribute("data-estimate") + "?" + query, {credentials: "same-origin"})
      .then(function (response) { return response.ok ? response.text() : Promise.reject(response.status); })
      .then(function (html) {
        if (mine === sent) { target.innerHTML = html; target.setAttribute("data-updated", String(mine)); }
      })
      .catch(function () { if (mine === sent) { target.textContent = "The estimate is not available right now."; } })
      .finally(function () { if (mine === sent) { target.removeAttribute("aria-busy"); } });
  }
  function later() { clearTimeout(timer); timer = setTimeout(update, 150); }
  form.addEventListener("input", later);
  form.addEventListener("change", later);
})();
