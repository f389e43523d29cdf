// Small progressive enhancements of the contract pages; every page works without them.
// - form[data-busy]: on submit, the submit button shows its data-busy-text and is disabled,
//   so a slow signature shows progress and is not sent twice.
// - button[data-wait]: the re-send button counts down data-wait seconds before it is enabled.
"use strict";

function markBusy(form) {
  form.addEventListener("submit", function (event) {
    var button = event.submitter || form.querySelector("button[type=submit]");
    if (!button || button.disabled) {
      return;
    }
    form.setAttribute("aria-busy", "true");
    button.setAttribute("aria-busy", "true");
    if (button.dataset.busyText) {
      button.textContent = button.dataset.busyText;
    }
    // disabled after the browser has taken the button's value into the submission
    window.setTimeout(function () { button.disabled = true; }, 0);
  });
}

function countDown(button) {
  var left = parseInt(button.dataset.wait, 10);
  var label = button.textContent;
  var template = button.dataset.waitText || "{s}";
  if (!(left > 0)) {
    return;
  }
  button.disabled = true;
  function tick() {
    if (left <= 0) {
      button.disabled = false;
      button.textContent = label;
      return;
    }
    button.textContent = template.replace("{s}", String(left));
    left -= 1;
    window.setTimeout(tick, 1000);
  }
  tick();
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form[data-busy]").forEach(markBusy);
  document.querySelectorAll("button[data-wait]").forEach(countDown);
});

// .preview[data-place-form]: a click on a page puts the named form's field there (page, x, y
// in PDF points from the page's lower left corner) and marks it; typing the numbers works too.
function placeFields(preview) {
  var form = document.getElementById(preview.dataset.placeForm);
  if (!form) {
    return;
  }
  var marker = document.createElement("span");
  marker.className = "marker";
  marker.hidden = true;
  preview.querySelectorAll("img[data-page]").forEach(function (image) {
    image.addEventListener("click", function (event) {
      var pageWidth = parseFloat(image.dataset.width);
      var pageHeight = parseFloat(image.dataset.height);
      var scale = image.clientWidth / pageWidth;
      var width = parseFloat(form.elements.width.value) || 180;
      var height = parseFloat(form.elements.height.value) || 60;
      var box = image.getBoundingClientRect();
      // the click is the field's top left corner, kept inside the page
      var left = Math.min(Math.max(0, (event.clientX - box.left) / scale), pageWidth - width);
      var top = Math.min(Math.max(0, (event.clientY - box.top) / scale), pageHeight - height);
      form.elements.page.value = image.dataset.page;
      form.elements.x.value = left.toFixed(1);
      form.elements.y.value = (pageHeight - top - height).toFixed(1);
      marker.style.left = (image.offsetLeft + left * scale) + "px";
      marker.style.top = (image.offsetTop + top * scale) + "px";
      marker.style.width = (width * scale) + "px";
      marker.style.height = (height * scale) + "px";
      marker.hidden = false;
      image.parentNode.appendChild(marker);
    });
  });
}

document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll(".preview[data-place-form]").forEach(placeFields);
});
