// The device-key page: opens a sealed message in the browser with the worker's own age identity.
// The identity is read from the file the worker picks and used only in this page's memory; the only
// request this script makes is a GET of the sealed file. Text is placed with textContent, never as
// HTML. Loaded with a nonce and a Subresource Integrity hash; `age` is the vendored age-encryption.
"use strict";
(function () {
  var form = document.getElementById("device-form");
  if (!form || typeof age === "undefined") { return; }
  var status = document.getElementById("device-status");
  var show = function (id, text) { document.getElementById(id).textContent = text || ""; };
  var fail = function () {
    status.textContent = form.dataset.failed;
    status.hidden = false;
  };
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    status.hidden = true;
    var file = document.getElementById("identity").files[0];
    if (!file) { fail(); return; }
    Promise.all([
      file.text(),
      fetch(form.dataset.ageUrl, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
        if (!r.ok) { throw new Error("fetch"); }
        return r.arrayBuffer();
      })
    ]).then(function (both) {
      var identities = both[0].split(/\r?\n/).map(function (l) { return l.trim(); })
        .filter(function (l) { return l.indexOf("AGE-SECRET-KEY-1") === 0; });
      if (identities.length === 0) { throw new Error("identity"); }
      var decrypter = new age.Decrypter();
      identities.forEach(function (i) { decrypter.addIdentity(i); });
      return decrypter.decrypt(new Uint8Array(both[1]), "text");
    }).then(function (text) {
      var letter = JSON.parse(text);
      show("device-from", letter.from);
      show("device-received", letter.received_at);
      show("device-subject", letter.subject);
      show("device-body", letter.body);
      document.getElementById("device-message").hidden = false;
      form.reset();
    }).catch(fail);
  });
})();
