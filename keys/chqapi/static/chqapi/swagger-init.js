// Starts Swagger UI over this installation's OpenAPI document (a file, not inline: the CSP allows no inline script).
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    deepLinking: true,
    docExpansion: "none",
    tryItOutEnabled: false,
    persistAuthorization: false,
  });
})();
