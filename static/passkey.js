// Passkeys: registering one (/sleutels) and logging in with one (/inloggen). Without this script both
// pages still work: the login takes the authenticator app's code, and adding a passkey says it needs
// JavaScript. The script only asks the browser's WebAuthn API and puts its answer, base64url-encoded,
// in the form's hidden fields before submitting the form as usual; it sends nothing itself. Loaded with
// a nonce and a Subresource Integrity hash.
"use strict";
(function () {
  if (!window.PublicKeyCredential || !navigator.credentials) { return; }
  var encode = function (buffer) {
    var bytes = new Uint8Array(buffer), text = "";
    for (var i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  };
  var decode = function (text) {
    var base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    var binary = atob(base64 + "===".slice((base64.length + 3) % 4));
    var bytes = new Uint8Array(binary.length);
    for (var i = 0; i < binary.length; i++) { bytes[i] = binary.charCodeAt(i); }
    return bytes;
  };
  var fail = function (source) {
    var status = document.getElementById("passkey-status");
    status.textContent = source.dataset.failed;
    status.hidden = false;
  };

  var login = document.getElementById("passkey-login");
  if (login) {
    login.hidden = false;
    login.addEventListener("click", function () {
      var form = login.form;
      // The passphrase stays the first factor; only the code is replaced.
      if (!form.elements.handle.reportValidity() || !form.elements.passphrase.reportValidity()) { return; }
      navigator.credentials.get({
        publicKey: {
          challenge: decode(login.dataset.challenge),
          rpId: login.dataset.rpId,
          userVerification: "preferred",
          timeout: 120000
        }
      }).then(function (credential) {
        form.elements.passkey_id.value = encode(credential.rawId);
        form.elements.passkey_client_data.value = encode(credential.response.clientDataJSON);
        form.elements.passkey_authenticator_data.value = encode(credential.response.authenticatorData);
        form.elements.passkey_signature.value = encode(credential.response.signature);
        form.elements.totp.required = false;
        form.submit();
      }).catch(function () { fail(login); });
    });
  }

  var add = document.getElementById("passkey-add");
  if (add) {
    var needed = document.getElementById("passkey-script-needed");
    if (needed) { needed.hidden = true; }
    add.addEventListener("submit", function (event) {
      event.preventDefault();
      var data = add.dataset;
      var exclude = data.exclude ? data.exclude.split(",") : [];
      navigator.credentials.create({
        publicKey: {
          challenge: decode(data.challenge),
          rp: { id: data.rpId, name: "schuilnaam" },
          user: { id: decode(data.userId), name: data.userName, displayName: data.userName },
          pubKeyCredParams: [{ type: "public-key", alg: -7 }, { type: "public-key", alg: -8 }],
          excludeCredentials: exclude.map(function (id) { return { type: "public-key", id: decode(id) }; }),
          // Discoverable, so that the login need not name the handle's credentials (which would tell
          // anyone whether a handle exists).
          authenticatorSelection: { residentKey: "required", requireResidentKey: true, userVerification: "preferred" },
          attestation: "none",
          timeout: 120000
        }
      }).then(function (credential) {
        add.elements.client_data.value = encode(credential.response.clientDataJSON);
        add.elements.attestation.value = encode(credential.response.attestationObject);
        add.submit();
      }).catch(function () { fail(add); });
    });
  }
})();
