# ruff: noqa: E501 -- paragraphs of prose are kept one per line, as a text editor shows them
"""The template study's consent text, version 1.0: a starting point that a study replaces with
the text its ethics board approved. Written for this project, in plain words."""

from datetime import date

CONSENT_VERSION = "1.0"
CONSENT_TEMPLATE_DATE = date(2025, 1, 1)

CONSENT_TEXTS = {
    "en": """\
This study follows people in recovery from drug use for one year, to learn how mutual-help groups (such as Narcotics Anonymous or SMART Recovery) and treatment relate to how people do over time.

What you would do: answer a short survey on your phone now and again at 1, 3, 6 and 12 months. Each takes about 5 to 10 minutes. We send you a link by text message or e-mail when a survey is due, and a few reminders.

What we ask about: the meetings you go to, your involvement in groups, medication for addiction treatment, craving and drug use. You may skip any question you do not want to answer.

Risks: some questions are personal. If your answers were seen by others, this could cause you harm; we protect them carefully. Your name, phone and e-mail are stored encrypted and kept apart from your answers. Researchers see your answers only under a study number, never with your name.

If an answer shows you may be in danger (for example an overdose), we show you where to get help at once, and the study team may contact you.

Taking part is your choice. You can stop at any time, with no effect on your treatment or the groups you attend. If you stop, you can ask us to erase your name and contact details.

Questions: ask the study coordinator who gave you this link.""",
    "es": """\
Este estudio acompaña durante un año a personas en recuperación del consumo de drogas, para saber cómo se relacionan los grupos de ayuda mutua (como Narcóticos Anónimos o SMART Recovery) y el tratamiento con cómo les va a lo largo del tiempo.

Qué haría usted: responder una encuesta breve en su teléfono ahora y otra vez a los 1, 3, 6 y 12 meses. Cada una toma de 5 a 10 minutos. Le enviamos un enlace por mensaje de texto o correo electrónico cuando toca una encuesta, y algunos recordatorios.

Qué preguntamos: las reuniones a las que va, su participación en los grupos, la medicación para el tratamiento de la adicción, las ganas de consumir y el consumo de drogas. Puede saltarse cualquier pregunta que no quiera responder.

Riesgos: algunas preguntas son personales. Si otras personas vieran sus respuestas, eso podría perjudicarle; por eso las protegemos con cuidado. Su nombre, teléfono y correo se guardan cifrados y separados de sus respuestas. Los investigadores ven sus respuestas solo con un número de estudio, nunca con su nombre.

Si una respuesta indica que puede estar en peligro (por ejemplo, una sobredosis), le mostramos en el momento dónde conseguir ayuda, y el equipo del estudio puede ponerse en contacto con usted.

Participar es su decisión. Puede dejarlo cuando quiera, sin ningún efecto en su tratamiento ni en los grupos a los que va. Si lo deja, puede pedirnos que borremos su nombre y sus datos de contacto.

Preguntas: consulte a la coordinadora o al coordinador del estudio que le dio este enlace.""",
    "fa": """\
این پژوهش افرادی را که در مسیر بهبودی از مصرف مواد هستند یک سال همراهی می‌کند تا بفهمیم گروه‌های همیاری (مانند معتادان گمنام یا اسمارت ریکاوری) و درمان چه ارتباطی با حال افراد در طول زمان دارند.

کاری که شما انجام می‌دهید: یک پرسشنامهٔ کوتاه را اکنون و دوباره در ماه‌های ۱، ۳، ۶ و ۱۲ روی تلفن خود پاسخ می‌دهید. هر کدام حدود ۵ تا ۱۰ دقیقه طول می‌کشد. هر بار که نوبت پرسشنامه است، یک پیوند با پیامک یا ایمیل و چند یادآوری برایتان می‌فرستیم.

آنچه می‌پرسیم: جلساتی که می‌روید، مشارکت شما در گروه‌ها، داروی درمان اعتیاد، میل به مصرف و مصرف مواد. می‌توانید به هر پرسشی که نمی‌خواهید پاسخ ندهید.

خطرها: برخی پرسش‌ها شخصی هستند. اگر دیگران پاسخ‌های شما را ببینند، ممکن است به شما آسیب برسد؛ به همین دلیل با دقت از آن‌ها محافظت می‌کنیم. نام، تلفن و ایمیل شما رمزنگاری‌شده و جدا از پاسخ‌هایتان نگهداری می‌شود. پژوهشگران پاسخ‌های شما را فقط با یک شمارهٔ پژوهشی می‌بینند، هرگز با نام شما.

اگر پاسخی نشان دهد که ممکن است در خطر باشید (مثلاً بیش‌مصرفی)، همان لحظه به شما نشان می‌دهیم که از کجا کمک بگیرید و ممکن است تیم پژوهش با شما تماس بگیرد.

شرکت در این پژوهش انتخاب خود شماست. هر زمان بخواهید می‌توانید کنار بکشید، بی‌آنکه بر درمان شما یا گروه‌هایی که می‌روید اثری داشته باشد. اگر کنار بکشید، می‌توانید از ما بخواهید نام و اطلاعات تماس شما را پاک کنیم.

پرسش‌ها: از هماهنگ‌کنندهٔ پژوهش که این پیوند را به شما داده است بپرسید.""",
}
