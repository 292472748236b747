// Posts the gateway form of an approved batch as soon as the page is loaded.
document.getElementById("alipay-gateway-form").submit();
