/* Drag and drop for the upload form. The form works without this script: it only
   lets files be dropped onto the labelled region around the file input, and lists
   the files chosen (name and size). No build step; served as is. */
(function () {
  "use strict";

  function humanSize(n) {
    var units = ["B", "kB", "MB", "GB", "TB"];
    var size = n;
    for (var i = 0; i < units.length; i++) {
      if (size < 1000 || i === units.length - 1) {
        return i === 0 ? size + " B" : size.toFixed(1) + " " + units[i];
      }
      size /= 1000;
    }
    return n + " B";
  }

  function setUp(zone) {
    var input = zone.querySelector('input[type="file"]');
    var list = zone.querySelector("[data-file-list]");
    if (!input || !list || typeof DataTransfer === "undefined") {
      return;
    }
    var hint = zone.querySelector("[data-drop-hint]");
    if (hint) {
      hint.hidden = false;
    }
    var depth = 0;

    function render() {
      list.textContent = "";
      Array.prototype.forEach.call(input.files || [], function (file) {
        var item = document.createElement("li");
        var name = document.createElement("span");
        name.className = "upload-name";
        name.textContent = file.name;
        item.appendChild(name);
        item.appendChild(document.createTextNode(" (" + humanSize(file.size) + ")"));
        list.appendChild(item);
      });
    }

    function highlight(on) {
      zone.classList.toggle("dragover", on);
    }

    zone.addEventListener("dragenter", function (event) {
      event.preventDefault();
      depth += 1;
      highlight(true);
    });
    zone.addEventListener("dragover", function (event) {
      event.preventDefault();
      if (event.dataTransfer) {
        event.dataTransfer.dropEffect = "copy";
      }
      highlight(true);
    });
    zone.addEventListener("dragleave", function () {
      depth = Math.max(0, depth - 1);
      if (depth === 0) {
        highlight(false);
      }
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      depth = 0;
      highlight(false);
      var dropped = event.dataTransfer ? event.dataTransfer.files : null;
      if (!dropped || dropped.length === 0) {
        return;
      }
      // Keep the files already chosen; a dropped file replaces one of the same name.
      var merged = new DataTransfer();
      var names = {};
      Array.prototype.forEach.call(dropped, function (file) {
        names[file.name] = true;
      });
      if (input.multiple) {
        Array.prototype.forEach.call(input.files || [], function (file) {
          if (!names[file.name]) {
            merged.items.add(file);
          }
        });
      }
      Array.prototype.forEach.call(dropped, function (file, i) {
        if (input.multiple || i === 0) {
          merged.items.add(file);
        }
      });
      input.files = merged.files;
      input.dispatchEvent(new Event("change", { bubbles: true }));
    });
    input.addEventListener("change", render);
    render();
  }

  Array.prototype.forEach.call(document.querySelectorAll("[data-dropzone]"), setUp);
})();
